/*
 * enospc.c: an LD_PRELOAD shim that makes a directory behave like a full
 * filesystem, for tests/integration/test_fulldisk.py where it cannot mount
 * a small tmpfs (not root, or no mounts in this container), and beside the
 * tmpfs where it can.
 *
 *   ENOSPC_DIR   the directory whose files are on the "full disk"
 *   ENOSPC_FLAG  a path: while a file exists there, the disk is full
 *
 * Full means what a full ext4 or tmpfs does: a write or a truncation that
 * would make a file under ENOSPC_DIR bigger fails with ENOSPC, and so does
 * an allocation; rewriting bytes the file already has succeeds (its blocks
 * are allocated), and bytes this process truncated away while the disk was
 * full can be taken again (SQLite truncates its wal-index at open and
 * grows it back).  The flag is looked at on every call, so the test fills
 * and frees the disk under a running process by creating and removing one
 * file.  Every refusal is counted in ENOSPC_FLAG.count when that file can
 * be appended to (best effort: it only tells the test the shim was there).
 *
 * Build: cc -shared -fPIC -o libenospc.so enospc.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* RTLD_NEXT */
#endif
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef int (*ftruncate_fn)(int, off_t);
typedef int (*fallocate_fn)(int, int, off_t, off_t);
typedef int (*posix_fallocate_fn)(int, off_t, off_t);

/* The next definition of name: libc's, or a sanitizer's interceptor.
 * Without it nothing sensible can go on. */
static void *enospc_next(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL)
		abort();
	return p;
}

#define NEXT(type, name) \
	static type next_; \
	if (next_ == NULL) \
		next_ = (type)enospc_next(name)

/* 1 when fd is a file under ENOSPC_DIR and the flag file exists. */
static int enospc_full(int fd)
{
	const char *dir = getenv("ENOSPC_DIR");
	const char *flag = getenv("ENOSPC_FLAG");
	char link[64], path[PATH_MAX];
	size_t dl;
	ssize_t n;

	if (dir == NULL || flag == NULL || access(flag, F_OK) != 0)
		return 0;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof path - 1)) < 0)
		return 0;
	path[n] = '\0';
	dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	return strncmp(path, dir, dl) == 0 && (path[dl] == '/' ||
	    path[dl] == '\0');
}

/* Bytes truncated away under ENOSPC_DIR since the disk became full: the
 * room a growth may take.  Forgotten when the flag goes. */
static off_t enospc_credit;

/* 1 when bytes up to end do not fit in fd's file as it is, nor in the
 * room freed since the disk became full (which they then take). */
static int enospc_grows(int fd, off_t end)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || end <= st.st_size)
		return 0;
	if (end - st.st_size <= enospc_credit) {
		enospc_credit -= end - st.st_size;
		return 0;
	}
	return 1;
}

static void enospc_count(void)
{
	const char *flag = getenv("ENOSPC_FLAG");
	char path[PATH_MAX];
	int fd, saved = errno;

	if (flag == NULL || (size_t)snprintf(path, sizeof path, "%s.count",
	    flag) >= sizeof path)
		return;
	/* Opened per refusal: the count file is not under ENOSPC_DIR. */
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) >= 0) {
		NEXT(write_fn, "write");
		(void)next_(fd, "x", 1);
		close(fd);
	}
	errno = saved;
}

/* Where a write at the file offset of fd would end. */
static off_t enospc_end_here(int fd, size_t len)
{
	int fl = fcntl(fd, F_GETFL);
	off_t at;

	if (fl >= 0 && (fl & O_APPEND))
		return len > 0 ? LLONG_MAX : 0;
	if ((at = lseek(fd, 0, SEEK_CUR)) < 0)
		return 0;
	return at + (off_t)len;
}

static int enospc_refuse(int fd, off_t end)
{
	if (!enospc_full(fd)) {
		enospc_credit = 0;
		return 0;
	}
	if (!enospc_grows(fd, end))
		return 0;
	enospc_count();
	errno = ENOSPC;
	return 1;
}

static size_t enospc_iov_len(const struct iovec *iov, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	NEXT(write_fn, "write");
	if (len > 0 && enospc_refuse(fd, enospc_end_here(fd, len)))
		return -1;
	return next_(fd, buf, len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	NEXT(pwrite_fn, "pwrite");
	if (len > 0 && enospc_refuse(fd, off + (off_t)len))
		return -1;
	return next_(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	NEXT(pwrite_fn, "pwrite64");
	if (len > 0 && enospc_refuse(fd, off + (off_t)len))
		return -1;
	return next_(fd, buf, len, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	size_t len = enospc_iov_len(iov, n);

	NEXT(writev_fn, "writev");
	if (len > 0 && enospc_refuse(fd, enospc_end_here(fd, len)))
		return -1;
	return next_(fd, iov, n);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	size_t len = enospc_iov_len(iov, n);

	NEXT(pwritev_fn, "pwritev");
	if (len > 0 && enospc_refuse(fd, off + (off_t)len))
		return -1;
	return next_(fd, iov, n, off);
}

/* A truncation on the full disk that shrinks the file frees room. */
static int enospc_truncate(ftruncate_fn next, int fd, off_t len)
{
	struct stat st;
	off_t was = -1;

	if (enospc_refuse(fd, len))
		return -1;
	if (enospc_full(fd) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		was = st.st_size;
	if (next(fd, len) != 0)
		return -1;
	if (was > len)
		enospc_credit += was - len;
	return 0;
}

int ftruncate(int fd, off_t len)
{
	NEXT(ftruncate_fn, "ftruncate");
	return enospc_truncate(next_, fd, len);
}

int ftruncate64(int fd, off_t len)
{
	NEXT(ftruncate_fn, "ftruncate64");
	return enospc_truncate(next_, fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	NEXT(fallocate_fn, "fallocate");
	if (enospc_refuse(fd, off + len))
		return -1;
	return next_(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
	NEXT(fallocate_fn, "fallocate64");
	if (enospc_refuse(fd, off + len))
		return -1;
	return next_(fd, mode, off, len);
}

/* posix_fallocate returns the error instead of setting errno. */
int posix_fallocate(int fd, off_t off, off_t len)
{
	NEXT(posix_fallocate_fn, "posix_fallocate");
	if (enospc_refuse(fd, off + len))
		return ENOSPC;
	return next_(fd, off, len);
}

int posix_fallocate64(int fd, off_t off, off_t len)
{
	NEXT(posix_fallocate_fn, "posix_fallocate64");
	if (enospc_refuse(fd, off + len))
		return ENOSPC;
	return next_(fd, off, len);
}
