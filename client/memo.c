/*
 * The digest memo (proto/PROTOCOL.md, "The digest memo"): file digests
 * remembered across runs by (device, inode, size, mtime_ns, ctime_ns), so
 * that a warm run of an unchanged tree costs a stat per file.
 *
 * Why a memo hit is the file's digest: a digest is remembered only when
 * the file's mtime and ctime are at least MEMO_RACY_NS older than the
 * clock read before the file was opened (CLOCK_REALTIME_COARSE, the clock
 * the kernel stamps files with).  Any write from then on stamps a ctime no
 * older than that clock, so the stat can no longer match: ctime cannot be
 * set back, and a rewrite of the same size with mtime forced back still
 * moves it.  The window covers file systems that keep whole or even
 * seconds.  On load, entries not older than the memo file's own mtime less
 * the window are dropped as well (git's racy-index rule), which holds
 * whatever happened between the hashing and the write.
 *
 * The file is ours alone: owned by the effective user, mode 0600, in a
 * directory owned by that user; anything else is ignored.  It is written
 * to a temporary file renamed over it, and a checksum over all of it
 * rejects a damaged or truncated one as a whole: such a memo is empty.
 * It is read only when the files at hand would cost more to hash than it
 * costs to read (memo_wanted), so a run with a few small files never pays
 * for a memo grown large on a big tree.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../proto/limits.h"
#include "memo.h"
#include "tcache.h"

/* Older than this before a file's hashing or the memo's write, or it is
 * racy: twice FAT's 2 s, covering whole-second stamps and clock steps of
 * that size. */
#define MEMO_RACY_NS (2LL * 1000000000LL)

/* Bounds on the file: the entries this run used are kept first. */
#define MEMO_MAX_ENTRIES (4u * TC_MAX_INPUTS)
#define MEMO_MAX_BYTES (16u << 20)

/* Layout: magic, u32 version, u32 count, the entries, BLAKE2b-256 of all
 * that precedes it.  Host byte order: a memo never leaves its machine, and
 * another order fails the version. */
static const unsigned char memo_magic[8] = "tcmemo\n";
#define MEMO_VERSION 1u
#define MEMO_HEAD 16u
#define MEMO_SUM TC_DIGEST_BYTES
/* dev, ino, size, mtime_ns, ctime_ns, digest, u32 path length, path */
#define MEMO_FIXED (5u * 8u + TC_DIGEST_BYTES + 4u)

struct memo_ent {
	const char *path;	/* into the loaded file, or owned */
	uint32_t len;
	uint8_t owned;
	uint8_t used;		/* hit or stored by this run */
	uint8_t dead;		/* stale: not written back */
	uint8_t hashed;		/* hash is set */
	uint64_t hash;
	uint64_t dev, ino, size;
	int64_t mtime, ctime;
	uint8_t digest[TC_DIGEST_BYTES];
};

struct tc_memo {
	char *path;
	int usable;		/* in a directory of ours: read and written */
	int loaded;		/* memo_ensure ran */
	int64_t disk;		/* the file's size; -1 until asked */
	int dirty;
	unsigned char *file;	/* the loaded file, which paths point into */
	struct memo_ent *v;
	size_t n, cap;
	uint32_t *table;	/* index + 1 into v, 0 empty; open addressing;
				   NULL until needed */
	size_t tcap;		/* a power of two, at least 2 * n */
	size_t cursor;		/* the entry the next lookup tries first */
	tc_memo_counts counts;
};

int64_t memo_clock(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME_COARSE, &ts) == -1)
		return INT64_MIN;
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* 0 when the time does not fit in int64 nanoseconds (year 2262). */
static int memo_ns(const struct timespec *ts, int64_t *out)
{
	if (ts->tv_sec > INT64_MAX / 1000000000LL - 1 ||
	    ts->tv_sec < INT64_MIN / 1000000000LL + 1)
		return 0;
	*out = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
	return 1;
}

/* 1 when a file stamped mtime and ctime may still change unseen after t. */
static int memo_racy(int64_t mtime, int64_t ctime, int64_t t)
{
	int64_t newest = mtime > ctime ? mtime : ctime;

	if (t == INT64_MIN || t < INT64_MIN + MEMO_RACY_NS)
		return 1;
	return newest > t - MEMO_RACY_NS;
}

/*
 * The table's hash, nothing more: FNV-1a, whose low bits depend on the low
 * bits alone (paths that differ in one digit crowd a few slots), folded so
 * that the index, its low bits, sees them all.
 */
static uint64_t memo_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 32;
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ h >> 29;
}

/* Takes the table as built (memo_index). */
static struct memo_ent *memo_find(tc_memo *m, const char *path, size_t len)
{
	uint64_t hash = memo_hash(path, len);
	size_t mask = m->tcap - 1, i;
	struct memo_ent *e;

	for (i = hash & mask; m->table[i] != 0; i = (i + 1) & mask) {
		e = &m->v[m->table[i] - 1];
		if (e->hash == hash && e->len == len &&
		    memcmp(e->path, path, len) == 0)
			return e;
	}
	return NULL;
}

static void memo_slot(tc_memo *m, size_t idx)
{
	size_t mask = m->tcap - 1, i;

	for (i = m->v[idx].hash & mask; m->table[i] != 0; i = (i + 1) & mask)
		;
	m->table[i] = (uint32_t)(idx + 1);
}

/* The table over v[0..n) at twice the room of want entries: built on the
 * first lookup the cursor cannot answer, so that a run that meets the
 * files in the memo's order never builds it.  -1 when out of memory. */
static int memo_index(tc_memo *m, size_t want)
{
	uint32_t *nt;
	size_t ntcap;

	if (m->table != NULL && 2 * want <= m->tcap)
		return 0;
	ntcap = m->tcap == 0 ? 512 : 2 * m->tcap;
	while (ntcap < 2 * want)
		ntcap *= 2;
	if ((nt = calloc(ntcap, sizeof *nt)) == NULL)
		return -1;
	free(m->table);
	m->table = nt;
	m->tcap = ntcap;
	for (size_t i = 0; i < m->n; i++) {
		if (!m->v[i].hashed) {
			m->v[i].hash = memo_hash(m->v[i].path, m->v[i].len);
			m->v[i].hashed = 1;
		}
		memo_slot(m, i);
	}
	return 0;
}

/* Room for want entries in v.  -1 when out of memory or over the
 * bound. */
static int memo_reserve(tc_memo *m, size_t want)
{
	struct memo_ent *nv;
	size_t ncap;

	if (want > MEMO_MAX_ENTRIES)
		return -1;
	if (want > m->cap) {
		ncap = m->cap == 0 ? 256 : 2 * m->cap;
		while (ncap < want)
			ncap *= 2;
		if ((nv = reallocarray(m->v, ncap, sizeof *nv)) == NULL)
			return -1;
		m->v = nv;
		m->cap = ncap;
	}
	return 0;
}

/*
 * The entry for abs, or NULL.  A walk of an unchanged tree meets its files
 * in the order the memo holds them (the order the last run met them), so
 * the entry after the last one found is tried first.
 */
static struct memo_ent *memo_entry(tc_memo *m, const char *abs, size_t len)
{
	struct memo_ent *e;

	if (m->cursor < m->n) {
		e = &m->v[m->cursor];
		if (e->len == len && memcmp(e->path, abs, len) == 0) {
			m->cursor++;
			return e;
		}
	}
	if (m->n == 0 || memo_index(m, m->n) == -1 ||
	    (e = memo_find(m, abs, len)) == NULL)
		return NULL;
	m->cursor = (size_t)(e - m->v) + 1;
	return e;
}

static int memo_key(const struct stat *sb, uint64_t *dev, uint64_t *ino,
		    uint64_t *size, int64_t *mtime, int64_t *ctime)
{
	if (!memo_ns(&sb->st_mtim, mtime) || !memo_ns(&sb->st_ctim, ctime))
		return 0;
	*dev = (uint64_t)sb->st_dev;
	*ino = (uint64_t)sb->st_ino;
	*size = (uint64_t)sb->st_size;
	return 1;
}

static void memo_ensure(tc_memo *m);

int memo_lookup(tc_memo *m, const char *abs, const struct stat *sb,
		uint8_t out[TC_DIGEST_BYTES])
{
	struct memo_ent *e;
	uint64_t dev, ino, size;
	int64_t mtime, ctime;

	if (m == NULL)
		return 0;
	memo_ensure(m);
	if (m->n == 0 || (e = memo_entry(m, abs, strlen(abs))) == NULL ||
	    e->dead)
		return 0;
	if (!memo_key(sb, &dev, &ino, &size, &mtime, &ctime) ||
	    e->dev != dev || e->ino != ino || e->size != size ||
	    e->mtime != mtime || e->ctime != ctime) {
		e->dead = 1;
		m->dirty = 1;
		return 0;
	}
	e->used = 1;
	m->counts.hits++;
	memcpy(out, e->digest, TC_DIGEST_BYTES);
	return 1;
}

void memo_store(tc_memo *m, const char *abs, const struct stat *sb,
		const uint8_t digest[TC_DIGEST_BYTES], int64_t t_read)
{
	struct memo_ent *e = NULL;
	uint64_t dev, ino, size;
	int64_t mtime, ctime;
	size_t len;
	char *copy;

	if (m == NULL)
		return;
	memo_ensure(m);
	m->counts.hashed++;
	len = strlen(abs);
	if (m->n > 0 && memo_index(m, m->n) == 0)
		e = memo_find(m, abs, len);
	if (!memo_key(sb, &dev, &ino, &size, &mtime, &ctime) ||
	    memo_racy(mtime, ctime, t_read) || len > TC_MAX_PATH ||
	    abs[0] != '/') {
		m->counts.racy++;
		if (e != NULL && !e->dead) {
			e->dead = 1;
			m->dirty = 1;
		}
		return;
	}
	if (e == NULL) {
		if (memo_reserve(m, m->n + 1) == -1 ||
		    memo_index(m, m->n + 1) == -1 ||
		    (copy = malloc(len + 1)) == NULL)
			return;		/* only a digest not remembered */
		memcpy(copy, abs, len + 1);
		e = &m->v[m->n];
		memset(e, 0, sizeof *e);
		e->path = copy;
		e->owned = 1;
		e->len = (uint32_t)len;
		e->hash = memo_hash(abs, len);
		e->hashed = 1;
		memo_slot(m, m->n++);
	}
	e->dev = dev;
	e->ino = ino;
	e->size = size;
	e->mtime = mtime;
	e->ctime = ctime;
	memcpy(e->digest, digest, TC_DIGEST_BYTES);
	e->used = 1;
	e->dead = 0;
	m->dirty = 1;
}

/* --- the file --- */

static void memo_get(const unsigned char **p, void *out, size_t len)
{
	memcpy(out, *p, len);
	*p += len;
}

/* The parent directory of path, when it is a directory owned by us. */
static int memo_dir_ours(const char *path)
{
	char dir[TC_MAX_PATH + 1];
	const char *slash = strrchr(path, '/');
	struct stat sb;
	size_t len;

	if (slash == NULL)
		return memo_dir_ours("./x");
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len > TC_MAX_PATH)
		return 0;
	memcpy(dir, path, len);
	dir[len] = '\0';
	return lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	    sb.st_uid == geteuid();
}

/* Reads the whole of fd (size bytes by fstat) into a new buffer. */
static unsigned char *memo_read(int fd, size_t size)
{
	unsigned char *buf;
	size_t got = 0;
	ssize_t n;

	if ((buf = malloc(size + 1)) == NULL)
		return NULL;
	while (got <= size) {
		n = read(fd, buf + got, size + 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got != size) {	/* changed under us, or an error */
		free(buf);
		return NULL;
	}
	return buf;
}

/* Checks and indexes the loaded file; -1 (then m is left empty) when any
 * of it is wrong. */
static int memo_parse(tc_memo *m, const unsigned char *buf, size_t size,
		      int64_t written)
{
	const unsigned char *p = buf, *end;
	uint8_t sum[TC_DIGEST_BYTES];
	uint32_t version, count, len;
	struct memo_ent e;

	if (size < MEMO_HEAD + MEMO_SUM || memcmp(buf, memo_magic, 8) != 0)
		return -1;
	end = buf + size - MEMO_SUM;
	hash_plain(buf, size - MEMO_SUM, sum);
	if (memcmp(sum, end, MEMO_SUM) != 0)
		return -1;
	p += 8;
	memo_get(&p, &version, 4);
	memo_get(&p, &count, 4);
	if (version != MEMO_VERSION || memo_reserve(m, count) == -1)
		return -1;
	for (uint32_t i = 0; i < count; i++) {
		if ((size_t)(end - p) < MEMO_FIXED)
			return -1;
		memset(&e, 0, sizeof e);
		memo_get(&p, &e.dev, 8);
		memo_get(&p, &e.ino, 8);
		memo_get(&p, &e.size, 8);
		memo_get(&p, &e.mtime, 8);
		memo_get(&p, &e.ctime, 8);
		memo_get(&p, e.digest, TC_DIGEST_BYTES);
		memo_get(&p, &len, 4);
		if (len == 0 || len > TC_MAX_PATH || (size_t)(end - p) < len ||
		    p[0] != '/' || memchr(p, '\0', len) != NULL)
			return -1;
		e.path = (const char *)p;
		e.len = len;
		p += len;
		/* git's rule: not trusted unless older than the write. */
		if (memo_racy(e.mtime, e.ctime, written))
			continue;
		m->v[m->n++] = e;
	}
	return p == end ? 0 : -1;
}

static void memo_clear(tc_memo *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].owned)
			free((char *)m->v[i].path);
	m->n = 0;
	m->cursor = 0;
	free(m->table);
	m->table = NULL;
	m->tcap = 0;
}

/* A memo file that is not ours alone, or not whole, is no memo. */
static void memo_load(tc_memo *m)
{
	struct stat sb;
	int64_t written;
	int fd;

	do
		fd = open(m->path, O_RDONLY|O_CLOEXEC|O_NOFOLLOW|O_NOCTTY|
		    O_NONBLOCK);
	while (fd == -1 && errno == EINTR);
	if (fd == -1)
		return;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    sb.st_uid == geteuid() && (sb.st_mode & 077) == 0 &&
	    sb.st_size >= (off_t)(MEMO_HEAD + MEMO_SUM) &&
	    sb.st_size <= (off_t)MEMO_MAX_BYTES &&
	    memo_ns(&sb.st_mtim, &written) &&
	    (m->file = memo_read(fd, (size_t)sb.st_size)) != NULL &&
	    memo_parse(m, m->file, (size_t)sb.st_size, written) == -1)
		memo_clear(m);
	close(fd);
}

/* Loaded once, on first need: a run that hashes a few small files never
 * reads a large memo (memo_wanted). */
static void memo_ensure(tc_memo *m)
{
	if (m->loaded)
		return;
	m->loaded = 1;
	if (m->usable)
		memo_load(m);
}

int memo_wanted(tc_memo *m, uint64_t work)
{
	struct stat sb;

	if (m == NULL)
		return 0;
	if (m->loaded)
		return 1;
	if (m->disk < 0)
		m->disk = m->usable && stat(m->path, &sb) == 0 &&
		    S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : 0;
	if ((uint64_t)m->disk > work)
		return 0;
	memo_ensure(m);
	return 1;
}

char *tc_default_memo(char *buf, size_t len)
{
	const char *v = getenv("TCACHE_MEMO"), *base;
	int n;

	if (v != NULL && *v != '\0') {
		if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0 ||
		    strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
			return NULL;
		n = snprintf(buf, len, "%s", v);
	} else if ((base = getenv("XDG_CACHE_HOME")) != NULL &&
	    base[0] == '/') {
		n = snprintf(buf, len, "%s/tcache/digests", base);
	} else if ((base = getenv("HOME")) != NULL && base[0] == '/') {
		n = snprintf(buf, len, "%s/.cache/tcache/digests", base);
	} else {
		return NULL;
	}
	if (n < 0 || (size_t)n >= len)
		return NULL;
	return buf;
}

tc_status tc_memo_open(const char *path, tc_memo **out)
{
	char def[TC_MAX_PATH + 1];
	tc_memo *m;

	*out = NULL;
	if (path == NULL && (path = tc_default_memo(def, sizeof def)) == NULL)
		return TC_OK;
	if ((m = calloc(1, sizeof *m)) == NULL)
		return TC_ENOMEM;
	if ((m->path = strdup(path)) == NULL) {
		free(m);
		return TC_ENOMEM;
	}
	/* A directory missing now is made ours on save. */
	m->usable = memo_dir_ours(m->path);
	m->disk = -1;
	*out = m;
	return TC_OK;
}

tc_status tc_memo_hash_file(tc_memo *m, const char *path,
			    uint8_t out[TC_DIGEST_BYTES])
{
	char abs[TC_MAX_PATH + 1];
	struct stat sb;
	unsigned char *buf;
	size_t plen, clen;
	int64_t t;
	tc_status st;
	int saved, named = 0;

	if (m == NULL || path == NULL || *path == '\0')
		return tc_hash_file(path, out);
	plen = strlen(path);
	if (path[0] == '/' && plen <= TC_MAX_PATH) {
		memcpy(abs, path, plen + 1);
		named = 1;
	} else if (path[0] != '/' && getcwd(abs, sizeof abs) != NULL &&
	    (clen = strlen(abs)) + 1 + plen <= TC_MAX_PATH) {
		if (clen > 1)
			abs[clen++] = '/';
		memcpy(abs + clen, path, plen + 1);
		named = 1;
	}
	if (named && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
		if (!memo_wanted(m, (uint64_t)sb.st_size + MEMO_FILE_COST))
			return tc_hash_file(path, out);
		if (memo_lookup(m, abs, &sb, out))
			return TC_OK;
	}
	if ((buf = malloc(HASH_CHUNK)) == NULL)
		return TC_ENOMEM;
	t = memo_clock();
	st = hash_path(path, out, &sb, buf, HASH_CHUNK);
	saved = errno;
	free(buf);
	if (st == TC_OK && named)
		memo_store(m, abs, &sb, out, t);
	errno = saved;
	return st;
}

/* mkdir -p of path's directory, each new one 0700. */
static void memo_mkdirs(const char *path)
{
	char dir[TC_MAX_PATH + 1];
	size_t len = strlen(path);

	if (len > TC_MAX_PATH)
		return;
	memcpy(dir, path, len + 1);
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			*p = '/';
			return;
		}
		*p = '/';
	}
}

static size_t memo_put(unsigned char *p, const struct memo_ent *e)
{
	unsigned char *start = p;
	uint32_t len = e->len;

	memcpy(p, &e->dev, 8); p += 8;
	memcpy(p, &e->ino, 8); p += 8;
	memcpy(p, &e->size, 8); p += 8;
	memcpy(p, &e->mtime, 8); p += 8;
	memcpy(p, &e->ctime, 8); p += 8;
	memcpy(p, e->digest, TC_DIGEST_BYTES); p += TC_DIGEST_BYTES;
	memcpy(p, &len, 4); p += 4;
	memcpy(p, e->path, len); p += len;
	return (size_t)(p - start);
}

/* The file's bytes: entries this run used first, then the others while
 * the bounds allow. */
static unsigned char *memo_encode(const tc_memo *m, size_t *size)
{
	unsigned char *buf, *p;
	size_t total = MEMO_HEAD + MEMO_SUM, need;
	uint32_t count = 0, version = MEMO_VERSION;

	for (size_t i = 0; i < m->n; i++)
		if (!m->v[i].dead)
			total += MEMO_FIXED + m->v[i].len;
	if (total > MEMO_MAX_BYTES)
		total = MEMO_MAX_BYTES;
	if ((buf = malloc(total)) == NULL)
		return NULL;
	p = buf + MEMO_HEAD;
	for (int pass = 1; pass >= 0; pass--) {
		for (size_t i = 0; i < m->n; i++) {
			const struct memo_ent *e = &m->v[i];

			if (e->dead || e->used != pass)
				continue;
			need = MEMO_FIXED + e->len;
			if (count == MEMO_MAX_ENTRIES ||
			    (size_t)(p - buf) + need + MEMO_SUM > total)
				break;
			p += memo_put(p, e);
			count++;
		}
	}
	memcpy(buf, memo_magic, 8);
	memcpy(buf + 8, &version, 4);
	memcpy(buf + 12, &count, 4);
	hash_plain(buf, (size_t)(p - buf), p);
	*size = (size_t)(p - buf) + MEMO_SUM;
	return buf;
}

static int memo_write_all(int fd, const unsigned char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * No fsync: a memo lost or cut short by a crash fails its checksum and is
 * ignored, which costs one run its hashing, never a wrong digest.
 */
tc_status tc_memo_save(tc_memo *m)
{
	char tmp[TC_MAX_PATH + 16];
	unsigned char *buf;
	size_t size;
	int fd, bad;

	if (m == NULL || !m->dirty)
		return TC_OK;
	if (!m->usable) {
		memo_mkdirs(m->path);
		if (!(m->usable = memo_dir_ours(m->path)))
			return TC_EIO;
	}
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX", m->path) >=
	    sizeof tmp)
		return TC_EINVAL;
	if ((buf = memo_encode(m, &size)) == NULL)
		return TC_ENOMEM;
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		free(buf);
		return TC_EIO;
	}
	bad = memo_write_all(fd, buf, size) == -1;
	free(buf);
	if (close(fd) == -1)
		bad = 1;
	if (bad || rename(tmp, m->path) == -1) {
		unlink(tmp);
		return TC_EIO;
	}
	m->dirty = 0;
	return TC_OK;
}

void tc_memo_counts_get(const tc_memo *m, tc_memo_counts *out)
{
	if (m == NULL)
		memset(out, 0, sizeof *out);
	else
		*out = m->counts;
}

void tc_memo_free(tc_memo *m)
{
	if (m == NULL)
		return;
	memo_clear(m);
	free(m->v);
	free(m->table);
	free(m->file);
	free(m->path);
	free(m);
}
