/*
 * The digest memo (client/memo.c) and the BLAKE2b behind file digests
 * (client/hash.c): a memo hit really leaves the file unread, and nothing
 * that changed a file's bytes can ever come back as a hit: a rewrite of
 * the same size with its mtime set back (ctime), a rewrite within the racy
 * window, a memo written too soon after a file changed, a damaged,
 * truncated, foreign or not-ours-alone memo file.
 *
 * Reads are counted by /proc/self/io (rchar, every byte read(2) returned
 * to this process, all threads), so the tests see what the library did,
 * not what it says it did.  Files are made, then the racy window (2 s) is
 * waited out once; the ctime test waits it out once more.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "client/tcache.h"

/* The racy window of memo.c, and a margin for the clock's ticks. */
#define WINDOW_WAIT_NS (2200LL * 1000000LL)
/* Files in the tree: enough to be hashed by several threads. */
#define NSMALL 40
#define BIG_BYTES (1024u * 1024u)

static char base[256];		/* the test's directory */
static char tree[300];		/* files made before the window was waited */
static char memo_path[300];

static void sleep_ns(long long ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000LL),
			       (long)(ns % 1000000000LL) };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void path_of(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Bytes that differ with seed. */
static unsigned char *pattern(size_t len, unsigned seed)
{
	unsigned char *p = malloc(len + 1);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 31u + seed * 131u + (i >> 8));
	return p;
}

/* rchar of /proc/self/io: bytes read so far by this process. */
static unsigned long long rchar(void)
{
	char line[128];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/self/io", "r");
	int found = 0;

	assert_non_null(f);
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "rchar: %llu", &v) == 1) {
			found = 1;
			break;
		}
	fclose(f);
	assert_true(found);
	return v;
}

/* Collects the tree through m; counts says what the memo did. */
static void collect(tc_memo *m, tc_input **in, size_t *n,
		    tc_memo_counts *counts)
{
	const char *paths[] = { tree };
	char err[256] = "";

	assert_int_equal(tc_inputs_collect_memo(m, base, paths, 1, in, n,
	    err, sizeof err), TC_OK);
	tc_memo_counts_get(m, counts);
}

static const tc_input *find(const tc_input *in, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(in[i].path, name) == 0)
			return &in[i];
	fail_msg("no input %s", name);
	return NULL;
}

/* Opens the memo, collects, saves and frees it: one `tcache key`. */
static void run_once(tc_input **in, size_t *n, tc_memo_counts *counts)
{
	tc_memo *m;

	assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
	assert_non_null(m);
	collect(m, in, n, counts);
	assert_int_equal(tc_memo_save(m), TC_OK);
	tc_memo_free(m);
}

static void file_digest(const char *path, uint8_t d[TC_DIGEST_BYTES])
{
	assert_int_equal(tc_hash_file(path, d), TC_OK);
}

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");
	char p[400], name[32];
	unsigned char *data;
	int n;

	(void)state;
	n = snprintf(base, sizeof base, "%s/tc-memo-XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp");
	if (n < 0 || (size_t)n >= sizeof base || mkdtemp(base) == NULL)
		return -1;
	snprintf(tree, sizeof tree, "%s/tree", base);
	snprintf(memo_path, sizeof memo_path, "%s/cache/digests", base);
	if (mkdir(tree, 0755) == -1)
		return -1;
	data = pattern(BIG_BYTES, 1);
	snprintf(p, sizeof p, "%s/big", tree);
	write_file(p, data, BIG_BYTES);
	free(data);
	for (int i = 0; i < NSMALL; i++) {
		snprintf(name, sizeof name, "s%02d", i);
		data = pattern(100 + 37u * (unsigned)i, (unsigned)i + 2);
		snprintf(p, sizeof p, "%s/%s", tree, name);
		write_file(p, data, 100 + 37u * (unsigned)i);
		free(data);
	}
	sleep_ns(WINDOW_WAIT_NS);
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
	(void)state;
	return nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh memo before each test. */
static int fresh(void **state)
{
	(void)state;
	if (unlink(memo_path) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

/* File digests against one-shot BLAKE2b at every length over the first
 * blocks, at random ones, and through files read in chunks (multi-part
 * hashing across read boundaries). */
static void test_blake2b(void **state)
{
	uint8_t a[TC_DIGEST_BYTES], b[TC_DIGEST_BYTES];
	size_t sizes[] = { 0, 1, 127, 128, 129, 131071, 131072, 131073,
			   3 * 131072 + 5, 1000003 };
	unsigned char *data = pattern(1100000, 7);
	char p[400];

	(void)state;
	assert_true(sodium_init() >= 0);
	for (size_t len = 0; len <= 1100; len++) {
		tc_hash_bytes(data + 3, len, a);
		crypto_generichash(b, sizeof b, data + 3, len, NULL, 0);
		assert_memory_equal(a, b, sizeof a);
	}
	srand(6);
	for (int i = 0; i < 50; i++) {
		size_t len = (size_t)rand() % 1100000;

		tc_hash_bytes(data, len, a);
		crypto_generichash(b, sizeof b, data, len, NULL, 0);
		assert_memory_equal(a, b, sizeof a);
	}
	path_of(p, sizeof p, base, "chunks");
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		write_file(p, data, sizes[i]);
		file_digest(p, a);
		crypto_generichash(b, sizeof b, data, sizes[i], NULL, 0);
		assert_memory_equal(a, b, sizeof a);
	}
	unlink(p);
	free(data);
}

/* The second run reads none of the tree, and gets the same digests; a
 * changed file is read again. */
static void test_hit_skips_read(void **state)
{
	tc_input *cold, *in, *plain;
	size_t ncold, n, nplain;
	tc_memo_counts c;
	unsigned long long before, read;
	uint8_t d[TC_DIGEST_BYTES];
	unsigned char *data;
	char p[400];

	(void)state;
	run_once(&cold, &ncold, &c);
	assert_int_equal(ncold, NSMALL + 1);
	assert_int_equal(c.hashed, NSMALL + 1);
	assert_int_equal(c.racy, 0);
	assert_int_equal(c.hits, 0);

	before = rchar();
	run_once(&in, &n, &c);
	read = rchar() - before;
	assert_int_equal(c.hits, NSMALL + 1);
	assert_int_equal(c.hashed, 0);
	/* The memo file itself is read: a few KiB, not the 1 MiB file. */
	assert_true(read < 64 * 1024);
	assert_int_equal(n, ncold);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(in[i].path, cold[i].path);
		assert_memory_equal(in[i].digest, cold[i].digest,
		    TC_DIGEST_BYTES);
	}
	tc_inputs_free(in, n);

	/* Without a memo, the same inputs. */
	collect(NULL, &plain, &nplain, &c);
	assert_int_equal(nplain, ncold);
	for (size_t i = 0; i < nplain; i++)
		assert_memory_equal(plain[i].digest, cold[i].digest,
		    TC_DIGEST_BYTES);
	tc_inputs_free(plain, nplain);

	/* Changed: read again, the new digest. */
	path_of(p, sizeof p, tree, "big");
	data = pattern(BIG_BYTES, 99);
	write_file(p, data, BIG_BYTES);
	free(data);
	before = rchar();
	run_once(&in, &n, &c);
	read = rchar() - before;
	assert_int_equal(c.hashed, 1);
	assert_int_equal(c.hits, NSMALL);
	assert_true(read >= BIG_BYTES);
	file_digest(p, d);
	assert_memory_equal(find(in, n, "tree/big")->digest, d, sizeof d);
	assert_memory_not_equal(find(cold, ncold, "tree/big")->digest, d,
	    sizeof d);
	tc_inputs_free(in, n);
	tc_inputs_free(cold, ncold);
}

/* The same bytes count, the mtime set back: only the ctime says. */
static void test_same_size_mtime_back(void **state)
{
	struct stat before, after;
	struct timespec times[2];
	tc_input *in;
	size_t n;
	tc_memo_counts c;
	uint8_t old[TC_DIGEST_BYTES], now[TC_DIGEST_BYTES];
	unsigned char *data;
	char p[400];

	(void)state;
	run_once(&in, &n, &c);
	memcpy(old, find(in, n, "tree/s07")->digest, sizeof old);
	tc_inputs_free(in, n);

	path_of(p, sizeof p, tree, "s07");
	assert_int_equal(stat(p, &before), 0);
	data = pattern((size_t)before.st_size, 1234);
	write_file(p, data, (size_t)before.st_size);
	free(data);
	times[0] = before.st_atim;
	times[1] = before.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
	assert_int_equal(stat(p, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	/* Out of the racy window again: only the ctime differs now. */
	sleep_ns(WINDOW_WAIT_NS);

	run_once(&in, &n, &c);
	/* s07, and tree/big when test_hit_skips_read changed it last */
	assert_true(c.hashed >= 1);
	assert_int_equal(c.racy, 0);
	file_digest(p, now);
	assert_memory_not_equal(old, now, sizeof now);
	assert_memory_equal(find(in, n, "tree/s07")->digest, now,
	    sizeof now);
	tc_inputs_free(in, n);
}

/*
 * A file changed within the racy window before it was hashed is not
 * remembered: the next run, though nothing changed in between, reads it
 * again.  (Were it remembered, a second write within the same timestamp
 * tick would leave its stat as it was.)
 */
static void test_racy_reread(void **state)
{
	uint8_t got[TC_DIGEST_BYTES], want[TC_DIGEST_BYTES];
	unsigned long long before, read;
	unsigned char *data = pattern(BIG_BYTES, 5);
	tc_memo_counts c;
	tc_memo *m;
	char p[400];

	(void)state;
	path_of(p, sizeof p, base, "fresh");
	write_file(p, data, BIG_BYTES);
	tc_hash_bytes(data, BIG_BYTES, want);
	free(data);
	for (int run = 0; run < 2; run++) {
		assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
		before = rchar();
		assert_int_equal(tc_memo_hash_file(m, p, got), TC_OK);
		read = rchar() - before;
		assert_int_equal(tc_memo_save(m), TC_OK);
		tc_memo_counts_get(m, &c);
		tc_memo_free(m);
		assert_memory_equal(got, want, sizeof want);
		assert_int_equal(c.hits, 0);
		assert_int_equal(c.hashed, 1);
		assert_int_equal(c.racy, 1);
		assert_true(read >= BIG_BYTES);
	}
	unlink(p);
}

/*
 * The case the window is for: a rewrite within the same timestamp tick,
 * same size, same stat.  Tried until a rewrite lands in the tick; kernels
 * with multigrain timestamps (6.13+, ext4, xfs, btrfs, tmpfs) stamp a
 * change after a stat finer than the tick, and then it never does, which
 * is said and not failed: the digest is checked every round.
 */
static void test_racy_same_tick(void **state)
{
	uint8_t first[TC_DIGEST_BYTES], got[TC_DIGEST_BYTES],
		want[TC_DIGEST_BYTES];
	struct stat a, b;
	tc_memo *m;
	char p[400];
	int same_tick = 0;

	(void)state;
	path_of(p, sizeof p, base, "tick");
	tc_hash_bytes("version 2\n", 10, want);
	for (int round = 0; round < 100 && !same_tick; round++) {
		assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
		write_file(p, "version 1\n", 10);
		assert_int_equal(tc_memo_hash_file(m, p, first), TC_OK);
		assert_int_equal(stat(p, &a), 0);
		assert_int_equal(tc_memo_save(m), TC_OK);
		tc_memo_free(m);
		write_file(p, "version 2\n", 10);
		assert_int_equal(stat(p, &b), 0);
		same_tick = a.st_ino == b.st_ino &&
		    a.st_ctim.tv_sec == b.st_ctim.tv_sec &&
		    a.st_ctim.tv_nsec == b.st_ctim.tv_nsec &&
		    a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
		    a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
		assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
		assert_int_equal(tc_memo_hash_file(m, p, got), TC_OK);
		tc_memo_free(m);
		assert_memory_equal(got, want, sizeof want);
	}
	if (!same_tick)
		print_message("test_racy_same_tick: no rewrite kept the stat "
		    "(fine-grained timestamps here); digests checked\n");
	unlink(p);
}

/* git's rule on load: an entry not older than the memo's own write (less
 * the window) is not trusted. */
static void test_memo_written_too_soon(void **state)
{
	struct timespec times[2];
	struct stat sb;
	tc_input *in;
	size_t n;
	tc_memo_counts c;
	char p[400];

	(void)state;
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	assert_int_equal(c.hits, NSMALL + 1);

	/* As if written within the window after s03 last changed. */
	path_of(p, sizeof p, tree, "s03");
	assert_int_equal(stat(p, &sb), 0);
	times[0] = sb.st_ctim;
	times[1] = sb.st_ctim;
	times[1].tv_sec += 1;
	assert_int_equal(utimensat(AT_FDCWD, memo_path, times, 0), 0);
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	/* Every file here changed about then: none trusted. */
	assert_int_equal(c.hits, 0);
	assert_int_equal(c.hashed, NSMALL + 1);
	/* Written again now: trusted again. */
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	assert_int_equal(c.hits, NSMALL + 1);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat sb;
	unsigned char *buf;
	int fd = open(path, O_RDONLY|O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)sb.st_size),
	    (ssize_t)sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

/* Writes bytes as the memo file: ours, 0600, as tc_memo_save would. */
static void put_memo(const unsigned char *buf, size_t len)
{
	int fd;

	unlink(memo_path);
	fd = open(memo_path, O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* A memo file so made is ignored as a whole: everything hashed again,
 * and the good memo then written replaces it. */
static void expect_ignored(const char *what)
{
	tc_input *in;
	size_t n;
	tc_memo_counts c;

	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	if (c.hits != 0 || c.hashed != NSMALL + 1)
		fail_msg("%s: %llu hits, %llu hashed", what,
		    (unsigned long long)c.hits, (unsigned long long)c.hashed);
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	assert_int_equal(c.hits, NSMALL + 1);
}

static void test_damaged_ignored(void **state)
{
	tc_input *in;
	size_t n, len;
	tc_memo_counts c;
	unsigned char *good, *bad;
	uint32_t version;

	(void)state;
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	good = slurp(memo_path, &len);
	assert_true(len > 100);
	bad = malloc(len);
	assert_non_null(bad);

	/* One bit of one digest. */
	memcpy(bad, good, len);
	bad[16 + 40] ^= 1;
	put_memo(bad, len);
	expect_ignored("a flipped bit");

	/* Cut short, at several places. */
	put_memo(good, len - 1);
	expect_ignored("the last byte cut");
	put_memo(good, len / 2);
	expect_ignored("cut in half");
	put_memo(good, 10);
	expect_ignored("cut in the header");
	put_memo(good, 0);
	expect_ignored("empty");

	/* Another version, its checksum right. */
	memcpy(bad, good, len);
	memcpy(&version, bad + 8, 4);
	version++;
	memcpy(bad + 8, &version, 4);
	tc_hash_bytes(bad, len - TC_DIGEST_BYTES, bad + len - TC_DIGEST_BYTES);
	put_memo(bad, len);
	expect_ignored("another version");

	/* More entries claimed than there are, checksum right. */
	memcpy(bad, good, len);
	bad[12]++;
	tc_hash_bytes(bad, len - TC_DIGEST_BYTES, bad + len - TC_DIGEST_BYTES);
	put_memo(bad, len);
	expect_ignored("a wrong count");

	/* Noise. */
	for (size_t i = 0; i < len; i++)
		bad[i] = (unsigned char)(rand() >> 7);
	put_memo(bad, len);
	expect_ignored("noise");

	/* Whole, but open to others. */
	put_memo(good, len);
	assert_int_equal(chmod(memo_path, 0644), 0);
	expect_ignored("mode 0644");
	struct stat sb;
	assert_int_equal(stat(memo_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);	/* rewritten ours */

	/* Whole, but another user's. */
	if (geteuid() == 0) {
		put_memo(good, len);
		assert_int_equal(chown(memo_path, 65534, 65534), 0);
		expect_ignored("owned by nobody");
	}
	free(good);
	free(bad);
}

/* Never in a directory that is not the user's own: not read, not
 * written. */
static void test_not_our_dir(void **state)
{
	char dir[400], path[500];
	tc_memo_counts c;
	tc_input *in;
	size_t n;
	tc_memo *m;
	struct stat sb;

	(void)state;
	if (geteuid() != 0)
		skip();		/* making another user's directory needs root */
	path_of(dir, sizeof dir, base, "theirs");
	assert_int_equal(mkdir(dir, 0777), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	path_of(path, sizeof path, dir, "digests");
	assert_int_equal(tc_memo_open(path, &m), TC_OK);
	collect(m, &in, &n, &c);
	tc_inputs_free(in, n);
	assert_int_equal(c.hashed, NSMALL + 1);
	assert_int_equal(tc_memo_save(m), TC_EIO);
	tc_memo_free(m);
	assert_int_equal(lstat(path, &sb), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_default_and_off(void **state)
{
	char buf[512];
	tc_memo *m = (tc_memo *)&m;

	(void)state;
	unsetenv("TCACHE_MEMO");
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	assert_string_equal(tc_default_memo(buf, sizeof buf),
	    "/x/cache/tcache/digests");
	setenv("XDG_CACHE_HOME", "relative", 1);	/* not absolute: unused */
	setenv("HOME", "/home/u", 1);
	assert_string_equal(tc_default_memo(buf, sizeof buf),
	    "/home/u/.cache/tcache/digests");
	setenv("TCACHE_MEMO", "/y/memo", 1);
	assert_string_equal(tc_default_memo(buf, sizeof buf), "/y/memo");
	assert_null(tc_default_memo(buf, 4));
	for (const char *const *v = (const char *const[]){ "off", "0", "no",
	    "false", NULL }; *v != NULL; v++) {
		setenv("TCACHE_MEMO", *v, 1);
		assert_null(tc_default_memo(buf, sizeof buf));
		assert_int_equal(tc_memo_open(NULL, &m), TC_OK);
		assert_null(m);
	}
	unsetenv("TCACHE_MEMO");
	/* NULL is no memo everywhere. */
	assert_int_equal(tc_memo_save(NULL), TC_OK);
	tc_memo_free(NULL);
}

/* tc_memo_hash_file: relative and absolute names of one file share an
 * entry; a missing file is an error, as with tc_hash_file. */
static void test_hash_file(void **state)
{
	uint8_t a[TC_DIGEST_BYTES], b[TC_DIGEST_BYTES];
	char cwd[512], p[400];
	tc_memo_counts c;
	tc_memo *m;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof cwd));
	path_of(p, sizeof p, tree, "s11");
	assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
	assert_int_equal(tc_memo_hash_file(m, p, a), TC_OK);
	assert_int_equal(tc_memo_save(m), TC_OK);
	tc_memo_free(m);
	assert_int_equal(chdir(tree), 0);
	assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
	assert_int_equal(tc_memo_hash_file(m, "s11", b), TC_OK);
	assert_memory_equal(a, b, sizeof a);
	assert_int_equal(tc_memo_hash_file(m, "nope", b), TC_EIO);
	assert_int_equal(errno, ENOENT);
	tc_memo_counts_get(m, &c);
	assert_int_equal(c.hits, 1);
	assert_int_equal(c.hashed, 0);
	tc_memo_free(m);
	assert_int_equal(chdir(cwd), 0);
	file_digest(p, b);
	assert_memory_equal(a, b, sizeof a);
}

/* Files met in another order than the memo holds them (files named
 * before the directory, backwards): every one found all the same. */
static void test_any_order(void **state)
{
	char p[3][400];
	const char *paths[4] = { p[0], p[1], p[2], tree };
	tc_input *in, *plain;
	size_t n, nplain;
	tc_memo_counts c;
	tc_memo *m;

	(void)state;
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	path_of(p[0], sizeof p[0], tree, "s30");
	path_of(p[1], sizeof p[1], tree, "s20");
	path_of(p[2], sizeof p[2], tree, "s10");
	assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
	assert_int_equal(tc_inputs_collect_memo(m, base, paths, 4, &in, &n,
	    NULL, 0), TC_OK);
	tc_memo_counts_get(m, &c);
	tc_memo_free(m);
	assert_int_equal(c.hits, NSMALL + 1 + 3);
	assert_int_equal(c.hashed, 0);
	collect(NULL, &plain, &nplain, &c);
	assert_int_equal(n, nplain);
	for (size_t i = 0; i < n; i++)
		assert_memory_equal(in[i].digest, plain[i].digest,
		    TC_DIGEST_BYTES);
	tc_inputs_free(in, n);
	tc_inputs_free(plain, nplain);
}

/* A few small files are hashed sooner than a larger memo is read: the
 * memo is left unread, and learns nothing. */
static void test_small_skips_memo(void **state)
{
	uint8_t d[TC_DIGEST_BYTES], want[TC_DIGEST_BYTES];
	unsigned long long before, read;
	tc_memo_counts c;
	struct stat sb;
	tc_input *in;
	size_t n;
	tc_memo *m;
	char p[400];

	(void)state;
	run_once(&in, &n, &c);
	tc_inputs_free(in, n);
	assert_int_equal(stat(memo_path, &sb), 0);
	assert_true(sb.st_size > 4096 + 10);	/* MEMO_FILE_COST + 10 bytes */
	path_of(p, sizeof p, base, "tiny");
	write_file(p, "0123456789", 10);
	tc_hash_bytes("0123456789", 10, want);
	assert_int_equal(tc_memo_open(memo_path, &m), TC_OK);
	before = rchar();
	assert_int_equal(tc_memo_hash_file(m, p, d), TC_OK);
	read = rchar() - before;
	tc_memo_counts_get(m, &c);
	assert_int_equal(tc_memo_save(m), TC_OK);
	tc_memo_free(m);
	assert_memory_equal(d, want, sizeof d);
	assert_true(read < (unsigned long long)sb.st_size);
	assert_int_equal(c.hits + c.hashed, 0);
	unlink(p);
}

/* One thread or several: the same inputs. */
static void test_threads_agree(void **state)
{
	tc_input *one, *many;
	size_t n1, n2;
	tc_memo_counts c;

	(void)state;
	setenv("TCACHE_HASH_THREADS", "1", 1);
	collect(NULL, &one, &n1, &c);
	setenv("TCACHE_HASH_THREADS", "4", 1);
	collect(NULL, &many, &n2, &c);
	unsetenv("TCACHE_HASH_THREADS");
	assert_int_equal(n1, n2);
	for (size_t i = 0; i < n1; i++) {
		assert_string_equal(one[i].path, many[i].path);
		assert_memory_equal(one[i].digest, many[i].digest,
		    TC_DIGEST_BYTES);
	}
	tc_inputs_free(one, n1);
	tc_inputs_free(many, n2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blake2b),
		cmocka_unit_test_setup(test_racy_reread, fresh),
		cmocka_unit_test_setup(test_racy_same_tick, fresh),
		cmocka_unit_test_setup(test_memo_written_too_soon, fresh),
		cmocka_unit_test_setup(test_damaged_ignored, fresh),
		cmocka_unit_test_setup(test_not_our_dir, fresh),
		cmocka_unit_test_setup(test_default_and_off, fresh),
		cmocka_unit_test_setup(test_hash_file, fresh),
		cmocka_unit_test(test_threads_agree),
		cmocka_unit_test_setup(test_any_order, fresh),
		cmocka_unit_test_setup(test_small_skips_memo, fresh),
		/* These change files of the tree: last. */
		cmocka_unit_test_setup(test_hit_skips_read, fresh),
		/* It waits out the window once more. */
		cmocka_unit_test_setup(test_same_size_mtime_back, fresh),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
