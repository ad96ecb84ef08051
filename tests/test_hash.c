/*
 * Key derivation against the vectors Python's hashlib wrote
 * (proto/vectors/vectors.txt), and the hashing helpers and input collection
 * of libtcache.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/tcache.h"
#include "proto/limits.h"

/* Bounds of the vector file and of one line's fields. */
#define VEC_MAX_FILE (16u * 1024u * 1024u)
#define VEC_MAX_FIELDS 256

struct field {
	char *s;
	size_t len;
};

/* A byte string from a field: "-" is empty.  NUL-terminated; *len set. */
static uint8_t *vec_unhex(const char *s, size_t slen, size_t *len)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t *out;
	const char *hi, *lo;

	assert_true(slen > 0);
	if (slen == 1 && s[0] == '-')
		slen = 0;
	assert_int_equal(slen % 2, 0);
	out = malloc(slen / 2 + 1);
	assert_non_null(out);
	for (size_t i = 0; i < slen / 2; i++) {
		hi = memchr(digits, s[2 * i], 16);
		lo = memchr(digits, s[2 * i + 1], 16);
		assert_true(hi != NULL && lo != NULL);
		out[i] = (uint8_t)((hi - digits) << 4 | (lo - digits));
	}
	out[slen / 2] = '\0';
	*len = slen / 2;
	return out;
}

/* A string from a field; the C API cannot carry a NUL inside one. */
static char *vec_str(const char *s, size_t slen)
{
	size_t len;
	char *out = (char *)vec_unhex(s, slen, &len);

	assert_int_equal(strlen(out), len);
	return out;
}

static void vec_digest(const struct field *f, uint8_t d[TC_DIGEST_BYTES])
{
	char hex[2 * TC_DIGEST_BYTES + 1];

	assert_int_equal(f->len, 2 * TC_DIGEST_BYTES);
	memcpy(hex, f->s, f->len);
	hex[f->len] = '\0';
	assert_int_equal(tc_unhex(hex, d), 0);
}

static size_t vec_split(char *line, struct field *f)
{
	size_t n = 0;
	char *p = line, *sp;

	for (;;) {
		assert_true(n < VEC_MAX_FIELDS);
		f[n].s = p;
		sp = strchr(p, ' ');
		f[n].len = sp == NULL ? strlen(p) : (size_t)(sp - p);
		assert_true(f[n].len > 0);
		n++;
		if (sp == NULL)
			return n;
		*sp = '\0';
		p = sp + 1;
	}
}

static char *vec_read(size_t *len)
{
	const char *path = getenv("TCACHE_VECTORS");
	struct stat sb;
	char *buf;
	size_t off = 0;
	ssize_t r;
	int fd;

	if (path == NULL || *path == '\0')
		path = "proto/vectors/vectors.txt";
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fstat(fd, &sb), 0);
	assert_true(sb.st_size > 0 && (uint64_t)sb.st_size <= VEC_MAX_FILE);
	buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	while (off < (size_t)sb.st_size) {
		r = read(fd, buf + off, (size_t)sb.st_size - off);
		if (r == -1 && errno == EINTR)
			continue;
		assert_true(r > 0);
		off += (size_t)r;
	}
	close(fd);
	buf[off] = '\0';
	assert_int_equal(strlen(buf), off);
	*len = off;
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static char tmpdir_base[PATH_MAX];

static const char *tmp_path(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", tmpdir_base, name);

	assert_true(n > 0 && (size_t)n < len);
	return buf;
}

static void vec_file(struct field *f, size_t n)
{
	uint8_t want[TC_DIGEST_BYTES], got[TC_DIGEST_BYTES];
	char path[PATH_MAX];
	uint8_t *data;
	size_t len;

	assert_int_equal(n, 3);
	data = vec_unhex(f[1].s, f[1].len, &len);
	vec_digest(&f[2], want);
	tc_hash_bytes(data, len, got);
	assert_memory_equal(got, want, TC_DIGEST_BYTES);
	/* the streaming reader on the same bytes, across its chunks */
	write_file(tmp_path("vec", path, sizeof path), data, len);
	memset(got, 0, sizeof got);
	assert_int_equal(tc_hash_file(path, got), TC_OK);
	assert_memory_equal(got, want, TC_DIGEST_BYTES);
	free(data);
}

/* Splits "left=right" at the '='. */
static void vec_pair(const struct field *f, struct field *l, struct field *r)
{
	char *eq = memchr(f->s, '=', f->len);

	assert_non_null(eq);
	l->s = f->s;
	l->len = (size_t)(eq - f->s);
	r->s = eq + 1;
	r->len = f->len - l->len - 1;
	assert_true(l->len > 0 && r->len > 0);
}

static void vec_source(struct field *f, size_t n)
{
	uint8_t want[TC_DIGEST_BYTES], got[TC_DIGEST_BYTES];
	size_t m = n - 2, tot = 2 * m + 1;
	tc_input *in = calloc(tot, sizeof *in);
	struct field l, r;

	assert_non_null(in);
	vec_digest(&f[1], want);
	for (size_t i = 0; i < m; i++) {
		vec_pair(&f[i + 2], &l, &r);
		in[i].kind = TC_INPUT_FILE;
		in[i].path = vec_str(l.s, l.len);
		vec_digest(&r, in[i].digest);
	}
	assert_int_equal(tc_source_digest(in, m, got), TC_OK);
	assert_memory_equal(got, want, TC_DIGEST_BYTES);

	/* reversed, and mixed with inputs of other kinds that must not count */
	for (size_t i = 0; i < m; i++) {
		in[m + i] = in[m - 1 - i];
		in[m + i].path = strdup(in[m - 1 - i].path);
		assert_non_null(in[m + i].path);
	}
	for (size_t i = 0; i < m; i++)
		in[i].kind = i % 2 ? TC_INPUT_FOUND : TC_INPUT_ENV;
	in[tot - 1].kind = TC_INPUT_FOUND;
	in[tot - 1].path = strdup("not/a/declared/file");
	assert_non_null(in[tot - 1].path);
	memset(got, 0, sizeof got);
	assert_int_equal(tc_source_digest(in, tot, got), TC_OK);
	assert_memory_equal(got, want, TC_DIGEST_BYTES);
	tc_inputs_free(in, tot);
}

static void vec_env(struct field *f, size_t n)
{
	uint8_t want[TC_DIGEST_BYTES], got[TC_DIGEST_BYTES];
	size_t m = n - 2;
	tc_env *vars = calloc(m + 1, sizeof *vars);
	struct field l, r;

	assert_non_null(vars);
	vec_digest(&f[1], want);
	for (size_t i = 0; i < m; i++) {
		vec_pair(&f[i + 2], &l, &r);
		vars[i].name = vec_str(l.s, l.len);
		if (r.len == 1 && r.s[0] == '!')
			vars[i].value = NULL;
		else
			vars[i].value = vec_str(r.s, r.len);
	}
	assert_int_equal(tc_env_digest(vars, m, got), TC_OK);
	assert_memory_equal(got, want, TC_DIGEST_BYTES);
	for (size_t i = 0; i < m; i++) {
		free((char *)vars[i].name);
		free((char *)vars[i].value);
	}
	free(vars);
}

static void vec_key(struct field *f, size_t n)
{
	uint8_t want[TC_DIGEST_BYTES], got[TC_DIGEST_BYTES];
	uint8_t src[TC_DIGEST_BYTES], env[TC_DIGEST_BYTES];
	char *project, *test;

	assert_int_equal(n, 6);
	vec_digest(&f[1], want);
	project = vec_str(f[2].s, f[2].len);
	test = vec_str(f[3].s, f[3].len);
	vec_digest(&f[4], src);
	vec_digest(&f[5], env);
	tc_key_derive(project, test, src, env, got);
	assert_memory_equal(got, want, TC_DIGEST_BYTES);
	free(project);
	free(test);
}

static int setup_tmp(void **state)
{
	const char *t = getenv("TMPDIR");
	int n;

	(void)state;
	n = snprintf(tmpdir_base, sizeof tmpdir_base, "%s/tc-hash-XXXXXX",
		     t != NULL && *t != '\0' ? t : "/tmp");
	if (n < 0 || (size_t)n >= sizeof tmpdir_base)
		return -1;
	return mkdtemp(tmpdir_base) == NULL ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown_tmp(void **state)
{
	(void)state;
	return nftw(tmpdir_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_vectors(void **state)
{
	struct field *f = calloc(VEC_MAX_FIELDS, sizeof *f);
	size_t len, n, counts[4] = { 0, 0, 0, 0 };
	char *buf, *line, *nl;

	(void)state;
	assert_non_null(f);
	buf = vec_read(&len);
	for (line = buf; line < buf + len; line = nl + 1) {
		nl = strchr(line, '\n');
		assert_non_null(nl);	/* every line ends with a newline */
		*nl = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		n = vec_split(line, f);
		assert_true(n >= 2);
		if (strcmp(f[0].s, "file") == 0) {
			vec_file(f, n);
			counts[0]++;
		} else if (strcmp(f[0].s, "source") == 0) {
			vec_source(f, n);
			counts[1]++;
		} else if (strcmp(f[0].s, "env") == 0) {
			vec_env(f, n);
			counts[2]++;
		} else if (strcmp(f[0].s, "key") == 0) {
			vec_key(f, n);
			counts[3]++;
		} else
			fail_msg("unknown vector type '%s'", f[0].s);
	}
	for (size_t i = 0; i < 4; i++)
		assert_true(counts[i] >= 5);
	free(buf);
	free(f);
}

/* Published BLAKE2b-256 digests, independent of the vector generator. */
static void test_known(void **state)
{
	uint8_t d[TC_DIGEST_BYTES];
	char hex[2 * TC_DIGEST_BYTES + 1];

	(void)state;
	tc_hash_bytes("", 0, d);
	tc_hex(d, hex);
	assert_string_equal(hex,
	    "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
	tc_hash_bytes("abc", 3, d);
	tc_hex(d, hex);
	assert_string_equal(hex,
	    "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

static void test_hash_file(void **state)
{
	uint8_t a[TC_DIGEST_BYTES], b[TC_DIGEST_BYTES];
	size_t len = 3 * 65536 + 77;
	uint8_t *data = malloc(len);
	char path[PATH_MAX];

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	write_file(tmp_path("big", path, sizeof path), data, len);
	tc_hash_bytes(data, len, a);
	assert_int_equal(tc_hash_file(path, b), TC_OK);
	assert_memory_equal(a, b, sizeof a);
	/* one changed byte changes the digest */
	data[len - 1] ^= 1;
	write_file(path, data, len);
	assert_int_equal(tc_hash_file(path, b), TC_OK);
	assert_memory_not_equal(a, b, sizeof a);
	free(data);

	errno = 0;
	assert_int_equal(tc_hash_file(tmp_path("nope", path, sizeof path), b),
			 TC_EIO);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(tc_hash_file(tmpdir_base, b), TC_EIO);
	assert_int_equal(errno, EISDIR);
	assert_int_equal(mkfifo(tmp_path("fifo", path, sizeof path), 0600), 0);
	assert_int_equal(tc_hash_file(path, b), TC_EIO);	/* never blocks */
	unlink(path);
}

static void test_hex(void **state)
{
	uint8_t d[TC_DIGEST_BYTES], e[TC_DIGEST_BYTES], keep[TC_DIGEST_BYTES];
	char hex[2 * TC_DIGEST_BYTES + 1], bad[2 * TC_DIGEST_BYTES + 2];

	(void)state;
	for (size_t i = 0; i < sizeof d; i++)
		d[i] = (uint8_t)(i * 37 + 5);
	tc_hex(d, hex);
	assert_int_equal(strlen(hex), 64);
	assert_memory_equal(hex, "052a", 4);
	assert_string_equal(hex + 60, "5b80");
	assert_int_equal(tc_unhex(hex, e), 0);
	assert_memory_equal(d, e, sizeof d);
	for (char *p = hex; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	memset(e, 0, sizeof e);
	assert_int_equal(tc_unhex(hex, e), 0);
	assert_memory_equal(d, e, sizeof d);

	memset(keep, 0xaa, sizeof keep);
	memcpy(e, keep, sizeof e);
	memcpy(bad, hex, 63);
	bad[63] = '\0';
	assert_int_equal(tc_unhex(bad, e), -1);		/* 63 digits */
	memcpy(bad, hex, 64);
	bad[64] = '0';
	bad[65] = '\0';
	assert_int_equal(tc_unhex(bad, e), -1);		/* 65 digits */
	memcpy(bad, hex, 65);
	bad[10] = 'g';
	assert_int_equal(tc_unhex(bad, e), -1);
	bad[10] = ' ';
	assert_int_equal(tc_unhex(bad, e), -1);
	assert_int_equal(tc_unhex("", e), -1);
	assert_int_equal(tc_unhex(NULL, e), -1);
	assert_memory_equal(e, keep, sizeof e);		/* untouched */
}

static void test_duplicates(void **state)
{
	uint8_t d[TC_DIGEST_BYTES], d2[TC_DIGEST_BYTES];
	char a[] = "src/a.c", b[] = "src/b.c", a2[] = "src/a.c";
	tc_input in[3] = {
		{ TC_INPUT_FILE, a, { 1 } },
		{ TC_INPUT_FILE, b, { 2 } },
		{ TC_INPUT_FILE, a2, { 3 } },
	};
	tc_env env[3] = { { "X", "1" }, { "Y", NULL }, { "X", "2" } };

	(void)state;
	assert_int_equal(tc_source_digest(in, 3, d), TC_EINVAL);
	/* the same path as a discovered input is not a duplicate */
	in[2].kind = TC_INPUT_FOUND;
	assert_int_equal(tc_source_digest(in, 3, d), TC_OK);
	assert_int_equal(tc_source_digest(in, 2, d2), TC_OK);
	assert_memory_equal(d, d2, sizeof d);
	assert_int_equal(tc_env_digest(env, 3, d), TC_EINVAL);
	assert_int_equal(tc_env_digest(env, 2, d), TC_OK);

	/* unset and empty differ; so does the value */
	env[1].value = "";
	assert_int_equal(tc_env_digest(env, 2, d2), TC_OK);
	assert_memory_not_equal(d, d2, sizeof d);
	/* a file's digest is in the source digest */
	assert_int_equal(tc_source_digest(in, 2, d), TC_OK);
	in[1].digest[31] ^= 1;
	assert_int_equal(tc_source_digest(in, 2, d2), TC_OK);
	assert_memory_not_equal(d, d2, sizeof d);
}

/* --- tc_inputs_collect --- */

static void mkpath(const char *name, const char *content)
{
	char path[PATH_MAX];

	tmp_path(name, path, sizeof path);
	if (content == NULL)
		assert_int_equal(mkdir(path, 0755), 0);
	else
		write_file(path, content, strlen(content));
}

static void mklink(const char *target, const char *name)
{
	char path[PATH_MAX];

	assert_int_equal(symlink(target, tmp_path(name, path, sizeof path)), 0);
}

static const tc_input *find_input(const tc_input *in, size_t n,
				  const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(in[i].path, path) == 0)
			return &in[i];
	return NULL;
}

static void assert_digest_of(const tc_input *in, const char *content)
{
	uint8_t d[TC_DIGEST_BYTES];

	assert_non_null(in);
	assert_int_equal(in->kind, TC_INPUT_FILE);
	tc_hash_bytes(content, strlen(content), d);
	assert_memory_equal(in->digest, d, sizeof d);
}

static void assert_zero_digest(const tc_input *in)
{
	static const uint8_t zero[TC_DIGEST_BYTES];

	assert_non_null(in);
	assert_memory_equal(in->digest, zero, sizeof zero);
}

/* root/: src/a.c src/sub/b.c src/.git/x src/link.c->a.c src/dir->sub
 * src/gone->nowhere src/fifo; out.txt beside root. */
static void make_tree(void)
{
	char path[PATH_MAX];

	mkpath("root", NULL);
	mkpath("root/src", NULL);
	mkpath("root/src/sub", NULL);
	mkpath("root/src/.git", NULL);
	mkpath("root/.git", NULL);
	mkpath("root/src/a.c", "int a;\n");
	mkpath("root/src/sub/b.c", "int b;\n");
	mkpath("root/src/.git/x", "git\n");
	mkpath("root/.git/HEAD", "ref\n");
	mkpath("root/src/empty", "");
	mkpath("out.txt", "outside\n");
	mklink("a.c", "root/src/link.c");
	mklink("sub", "root/src/dir");
	mklink("nowhere", "root/src/gone");
	assert_int_equal(mkfifo(tmp_path("root/src/fifo", path, sizeof path),
				0600), 0);
}

static void check_tree(const tc_input *in, size_t n, const char *outside)
{
	const char *want[] = {
		"missing.h", "nodir/y.h", "src/a.c", "src/dir/b.c", "src/empty",
		"src/gone", "src/link.c", "src/sub/b.c",
	};
	size_t w = sizeof want / sizeof want[0];

	assert_int_equal(n, w + 1);
	assert_string_equal(in[0].path, outside);	/* "/" sorts first */
	for (size_t i = 0; i < w; i++)
		assert_string_equal(in[i + 1].path, want[i]);
	assert_digest_of(&in[0], "outside\n");
	assert_zero_digest(find_input(in, n, "missing.h"));
	assert_zero_digest(find_input(in, n, "nodir/y.h"));
	assert_digest_of(find_input(in, n, "src/a.c"), "int a;\n");
	assert_digest_of(find_input(in, n, "src/empty"), "");
	assert_zero_digest(find_input(in, n, "src/gone"));
	assert_digest_of(find_input(in, n, "src/link.c"), "int a;\n");
	assert_digest_of(find_input(in, n, "src/sub/b.c"), "int b;\n");
	assert_digest_of(find_input(in, n, "src/dir/b.c"), "int b;\n");
}

static void test_collect(void **state)
{
	const char *paths[] = {
		"src", "./src/../src/a.c", "missing.h", "nodir/x/../y.h",
		"../out.txt", "src/a.c",
	};
	char cwd[PATH_MAX], root[PATH_MAX], outside[PATH_MAX], *real;
	char err[256];
	tc_input *in;
	size_t n;

	(void)state;
	make_tree();
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmp_path("root", root, sizeof root)), 0);
	real = realpath("../out.txt", NULL);
	assert_non_null(real);
	snprintf(outside, sizeof outside, "%s", real);
	free(real);

	assert_int_equal(tc_inputs_collect(".", paths, 6, &in, &n, err,
					   sizeof err), TC_OK);
	check_tree(in, n, outside);
	tc_inputs_free(in, n);

	/* the root by absolute path, and through a symbolic link */
	assert_int_equal(tc_inputs_collect(root, paths, 6, &in, &n, err,
					   sizeof err), TC_OK);
	check_tree(in, n, outside);
	tc_inputs_free(in, n);
	mklink("root", "alias");
	assert_int_equal(tc_inputs_collect(tmp_path("alias", root, sizeof root),
					   paths, 6, &in, &n, err, sizeof err),
			 TC_OK);
	check_tree(in, n, outside);
	tc_inputs_free(in, n);

	/* from a subdirectory: still named relative to the root */
	assert_int_equal(chdir("src"), 0);
	paths[0] = "sub/b.c";
	assert_int_equal(tc_inputs_collect("..", paths, 1, &in, &n, err,
					   sizeof err), TC_OK);
	assert_int_equal(n, 1);
	assert_string_equal(in[0].path, "src/sub/b.c");
	tc_inputs_free(in, n);
	assert_int_equal(chdir(cwd), 0);
}

/*
 * A path that does not resolve but names an existing file once normalised
 * ("nodir/../src/a.c", "src/a.c/") is that file, with its digest: an
 * absent file of the same name would keep the key when a.c changes.
 */
static void test_collect_unresolved(void **state)
{
	const char *paths[] = { "nodir/../src/a.c", "src/a.c/",
	    "nodir/../src" };
	char cwd[PATH_MAX], root[PATH_MAX], err[256];
	tc_input *in;
	size_t n;

	(void)state;
	mkpath("u", NULL);
	mkpath("u/src", NULL);
	mkpath("u/src/a.c", "int a;\n");
	mkpath("u/src/b.c", "int b;\n");
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmp_path("u", root, sizeof root)), 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(tc_inputs_collect(".", &paths[i], 1, &in, &n,
		    err, sizeof err), TC_OK);
		assert_int_equal(n, 1);
		assert_string_equal(in[0].path, "src/a.c");
		assert_digest_of(&in[0], "int a;\n");
		tc_inputs_free(in, n);
	}
	assert_int_equal(tc_inputs_collect(".", &paths[2], 1, &in, &n, err,
	    sizeof err), TC_OK);
	assert_int_equal(n, 2);
	assert_digest_of(find_input(in, n, "src/a.c"), "int a;\n");
	assert_digest_of(find_input(in, n, "src/b.c"), "int b;\n");
	tc_inputs_free(in, n);
	assert_int_equal(chdir(cwd), 0);
}

/* The source digest of what collecting paths[0..n) from "." gives. */
static void collect_digest(const char *const *paths, size_t n,
			   uint8_t d[TC_DIGEST_BYTES])
{
	tc_input *in;
	size_t nin;

	assert_int_equal(tc_inputs_collect(".", paths, n, &in, &nin, NULL, 0),
			 TC_OK);
	assert_int_equal(tc_source_digest(in, nin, d), TC_OK);
	tc_inputs_free(in, nin);
}

/*
 * A directory stands for every file below it, through symbolic links too:
 * an edit in a linked directory, or the link turned to another, must change
 * the key.  The files are named by the link's path.
 */
static void test_collect_linked_dir(void **state)
{
	const char *paths[] = { "src" };
	uint8_t d1[TC_DIGEST_BYTES], d2[TC_DIGEST_BYTES];
	char cwd[PATH_MAX], p[PATH_MAX], err[256];
	tc_input *in;
	size_t n;

	(void)state;
	mkpath("ld", NULL);
	mkpath("ld/src", NULL);
	mkpath("ld/src/a.c", "int a;\n");
	mkpath("ld/vendor", NULL);
	mkpath("ld/vendor/v.c", "int v;\n");
	mkpath("ld/vendor/deep", NULL);
	mkpath("ld/vendor/deep/w.c", "int w;\n");
	mkpath("ld/other", NULL);
	mkpath("ld/other/v.c", "int o;\n");
	mklink("../vendor", "ld/src/lib");
	mklink("nowhere", "ld/src/gone");
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmp_path("ld", p, sizeof p)), 0);

	assert_int_equal(tc_inputs_collect(".", paths, 1, &in, &n, err,
	    sizeof err), TC_OK);
	assert_int_equal(n, 4);
	assert_digest_of(find_input(in, n, "src/a.c"), "int a;\n");
	assert_digest_of(find_input(in, n, "src/lib/v.c"), "int v;\n");
	assert_digest_of(find_input(in, n, "src/lib/deep/w.c"), "int w;\n");
	assert_zero_digest(find_input(in, n, "src/gone"));
	assert_int_equal(tc_source_digest(in, n, d1), TC_OK);
	tc_inputs_free(in, n);

	mkpath("ld/vendor/deep/w.c", "int w2;\n");
	collect_digest(paths, 1, d2);
	assert_memory_not_equal(d1, d2, sizeof d1);
	mkpath("ld/vendor/deep/w.c", "int w;\n");
	collect_digest(paths, 1, d2);
	assert_memory_equal(d1, d2, sizeof d1);

	/* the link turned to another directory with the same file names */
	assert_int_equal(unlink("src/lib"), 0);
	assert_int_equal(symlink("../other", "src/lib"), 0);
	collect_digest(paths, 1, d2);
	assert_memory_not_equal(d1, d2, sizeof d1);
	assert_int_equal(chdir(cwd), 0);
}

/* Links back to a directory being walked end there, whichever way in. */
static void test_collect_link_loop(void **state)
{
	const char *paths[] = { "dir", "." };
	char cwd[PATH_MAX], p[PATH_MAX], err[256];
	tc_input *in;
	size_t n;

	(void)state;
	mkpath("lp", NULL);
	mkpath("lp/top.c", "top\n");
	mkpath("lp/dir", NULL);
	mkpath("lp/dir/a.c", "a\n");
	mkpath("lp/dir/sub", NULL);
	mkpath("lp/dir/sub/b.c", "b\n");
	mklink("..", "lp/dir/loop");
	mklink(".", "lp/dir/sub/self");
	mklink("../..", "lp/dir/sub/up");
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmp_path("lp", p, sizeof p)), 0);

	/* from dir: loop/ is lp, walked once; loop/dir is dir again */
	assert_int_equal(tc_inputs_collect(".", &paths[0], 1, &in, &n, err,
	    sizeof err), TC_OK);
	assert_int_equal(n, 4);
	assert_digest_of(find_input(in, n, "dir/a.c"), "a\n");
	assert_digest_of(find_input(in, n, "dir/sub/b.c"), "b\n");
	assert_digest_of(find_input(in, n, "dir/loop/top.c"), "top\n");
	assert_digest_of(find_input(in, n, "dir/sub/up/top.c"), "top\n");
	tc_inputs_free(in, n);

	/* from the root: every link leads back up */
	assert_int_equal(tc_inputs_collect(".", &paths[1], 1, &in, &n, err,
	    sizeof err), TC_OK);
	assert_int_equal(n, 3);
	assert_non_null(find_input(in, n, "top.c"));
	assert_non_null(find_input(in, n, "dir/a.c"));
	assert_non_null(find_input(in, n, "dir/sub/b.c"));
	tc_inputs_free(in, n);
	assert_int_equal(chdir(cwd), 0);
}

/*
 * Links that never loop can still reach one directory by exponentially
 * many paths: the walk gives up with an error rather than run for ever.
 */
static void test_collect_link_fanout(void **state)
{
	const char *paths[] = { "f0" };
	char name[64], target[64], cwd[PATH_MAX], p[PATH_MAX], err[256];
	tc_input *in = NULL;
	size_t n = 0;

	(void)state;
	mkpath("fan", NULL);
	for (int i = 0; i <= 18; i++) {
		snprintf(name, sizeof name, "fan/f%d", i);
		mkpath(name, NULL);
		if (i == 0)
			continue;
		snprintf(target, sizeof target, "../f%d", i);
		snprintf(name, sizeof name, "fan/f%d/a", i - 1);
		mklink(target, name);
		snprintf(name, sizeof name, "fan/f%d/b", i - 1);
		mklink(target, name);
	}
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmp_path("fan", p, sizeof p)), 0);
	assert_int_equal(tc_inputs_collect(".", paths, 1, &in, &n, err,
	    sizeof err), TC_EINVAL);
	assert_non_null(strstr(err, "directories"));
	assert_null(in);
	assert_int_equal(chdir(cwd), 0);
}

/* Moving a checkout keeps its source digest; changing a file does not. */
static void test_collect_moved(void **state)
{
	const char *paths[] = { "." };
	uint8_t d1[TC_DIGEST_BYTES], d2[TC_DIGEST_BYTES];
	char cwd[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
	tc_input *in;
	size_t n;

	(void)state;
	mkpath("m1", NULL);
	mkpath("m1/a.py", "a = 1\n");
	mkpath("m1/pkg", NULL);
	mkpath("m1/pkg/b.py", "b = 2\n");
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmp_path("m1", p, sizeof p)), 0);
	assert_int_equal(tc_inputs_collect(".", paths, 1, &in, &n, NULL, 0),
			 TC_OK);
	assert_int_equal(n, 2);
	assert_int_equal(tc_source_digest(in, n, d1), TC_OK);
	tc_inputs_free(in, n);

	assert_int_equal(rename(p, tmp_path("m2", q, sizeof q)), 0);
	assert_int_equal(chdir(q), 0);
	assert_int_equal(tc_inputs_collect(q, paths, 1, &in, &n, NULL, 0),
			 TC_OK);
	assert_int_equal(tc_source_digest(in, n, d2), TC_OK);
	tc_inputs_free(in, n);
	assert_memory_equal(d1, d2, sizeof d1);

	mkpath("m2/pkg/b.py", "b = 3\n");
	assert_int_equal(tc_inputs_collect(q, paths, 1, &in, &n, NULL, 0),
			 TC_OK);
	assert_int_equal(tc_source_digest(in, n, d2), TC_OK);
	tc_inputs_free(in, n);
	assert_memory_not_equal(d1, d2, sizeof d1);
	assert_int_equal(chdir(cwd), 0);
}

static void test_collect_errors(void **state)
{
	const char *paths[1];
	char err[PATH_MAX + 64], p[PATH_MAX], *lng;
	tc_input *in = (tc_input *)1;
	size_t n = 7;

	(void)state;
	mklink("loop", "loop");
	paths[0] = tmp_path("loop", p, sizeof p);
	assert_int_equal(tc_inputs_collect(tmpdir_base, paths, 1, &in, &n, err,
					   sizeof err), TC_EIO);
	assert_non_null(strstr(err, p));
	assert_null(in);
	assert_int_equal(n, 0);

	assert_int_equal(mkfifo(tmp_path("fifo2", p, sizeof p), 0600), 0);
	paths[0] = p;
	assert_int_equal(tc_inputs_collect(tmpdir_base, paths, 1, &in, &n, err,
					   sizeof err), TC_EINVAL);
	assert_non_null(strstr(err, p));

	paths[0] = "";
	assert_int_equal(tc_inputs_collect(tmpdir_base, paths, 1, &in, &n, err,
					   sizeof err), TC_EINVAL);

	lng = malloc(TC_MAX_PATH + 100);
	assert_non_null(lng);
	memset(lng, 'x', TC_MAX_PATH + 99);
	lng[TC_MAX_PATH + 99] = '\0';
	paths[0] = lng;
	assert_int_equal(tc_inputs_collect(tmpdir_base, paths, 1, &in, &n, err,
					   sizeof err), TC_EINVAL);
	free(lng);

	paths[0] = tmpdir_base;
	assert_int_equal(tc_inputs_collect(tmp_path("noroot", p, sizeof p),
					   paths, 1, &in, &n, err, sizeof err),
			 TC_EIO);
	assert_non_null(strstr(err, "noroot"));

	/* permissions do not stop root */
	if (geteuid() != 0) {
		mkpath("secret", "s\n");
		assert_int_equal(chmod(tmp_path("secret", p, sizeof p), 0), 0);
		paths[0] = p;
		assert_int_equal(tc_inputs_collect(tmpdir_base, paths, 1, &in,
						   &n, err, sizeof err),
				 TC_EIO);
		assert_non_null(strstr(err, "secret"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_known),
		cmocka_unit_test(test_hash_file),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_collect),
		cmocka_unit_test(test_collect_unresolved),
		cmocka_unit_test(test_collect_moved),
		cmocka_unit_test(test_collect_linked_dir),
		cmocka_unit_test(test_collect_link_loop),
		cmocka_unit_test(test_collect_link_fanout),
		cmocka_unit_test(test_collect_errors),
	};

	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
