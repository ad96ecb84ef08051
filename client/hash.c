/*
 * Key derivation (proto/PROTOCOL.md, "Keys"): BLAKE2b-256 of files, the
 * source digest, the env digest and the key.  The one module that includes
 * sodium.h.  proto/vectors/vectors.txt, written by Python's hashlib, pins
 * every encoding here.
 *
 * Every digest is libsodium's crypto_generichash (DESIGN.md): no BLAKE2b
 * of our own to get wrong.  Where libsodium is slower than b2sum on one
 * core, collection hashes files on several threads (collect.c).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "memo.h"
#include "tcache.h"

/* Personalisation strings; libsodium wants exactly 16 bytes, zero padded,
 * which is also what Python's blake2b(person=...) does with a short one. */
#define HASH_PERSON 16
static const unsigned char hash_person_src[HASH_PERSON] = "tcache-src-v1";
static const unsigned char hash_person_env[HASH_PERSON] = "tcache-env-v1";
static const unsigned char hash_person_key[HASH_PERSON] = "tcache-key-v1";
static const unsigned char hash_person_dir[HASH_PERSON] = "tcache-dirlist";

_Static_assert(HASH_PERSON == crypto_generichash_blake2b_PERSONALBYTES,
	       "personalisation size");
_Static_assert(TC_DIGEST_BYTES == crypto_generichash_blake2b_BYTES,
	       "a digest is BLAKE2b-256");

typedef crypto_generichash_blake2b_state hash_state;

static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_init_once(void)
{
	/*
	 * sodium_init only picks the fastest BLAKE2b implementation for this
	 * CPU; if it fails the portable one is used, which gives the same
	 * digests, so its result does not matter here.
	 */
	if (sodium_init() == -1)
		return;
}

static void hash_init(void)
{
	pthread_once(&hash_once, hash_init_once);
}

/* Unkeyed, unpersonalised BLAKE2b-256: file digests and the memo's sum. */
void hash_plain(const void *data, size_t len, uint8_t out[TC_DIGEST_BYTES])
{
	hash_init();
	crypto_generichash_blake2b(out, TC_DIGEST_BYTES, data, len, NULL, 0);
}

static void hash_start(hash_state *st, const unsigned char *person)
{
	hash_init();
	/* A NULL salt is the all-zero salt of hashlib's default. */
	crypto_generichash_blake2b_init_salt_personal(st, NULL, 0,
						      TC_DIGEST_BYTES, NULL,
						      person);
}

static void hash_update(hash_state *st, const void *p, size_t len)
{
	crypto_generichash_blake2b_update(st, p, len);
}

static void hash_u32(crypto_generichash_blake2b_state *st, uint32_t v)
{
	unsigned char b[4];

	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
	hash_update(st, b, sizeof b);
}

/* str(s) of PROTOCOL.md: u32 length, then the bytes. */
static void hash_str(hash_state *st, const char *s, size_t len)
{
	hash_u32(st, (uint32_t)len);
	hash_update(st, s, len);
}

static void hash_final(hash_state *st, uint8_t out[TC_DIGEST_BYTES])
{
	crypto_generichash_blake2b_final(st, out, TC_DIGEST_BYTES);
}

void tc_hash_bytes(const void *data, size_t len, uint8_t out[TC_DIGEST_BYTES])
{
	hash_plain(data, len, out);
}

/*
 * Hashes what is left to read of fd into out, reading into buf.  EOF is
 * the read that returns 0, never the size fstat gave: a file that grows
 * while it is read is hashed to its end.
 */
static tc_status hash_fd(int fd, uint8_t out[TC_DIGEST_BYTES],
			 unsigned char *buf, size_t buflen)
{
	hash_state st;
	ssize_t n;

	hash_init();
	crypto_generichash_blake2b_init(&st, NULL, 0, TC_DIGEST_BYTES);
	for (;;) {
		n = read(fd, buf, buflen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		crypto_generichash_blake2b_update(&st, buf, (size_t)n);
	}
	if (n == -1)
		return TC_EIO;
	crypto_generichash_blake2b_final(&st, out, TC_DIGEST_BYTES);
	return TC_OK;
}

/*
 * Only regular files: O_NONBLOCK keeps a fifo that replaced a file from
 * blocking the open, and fstat then refuses it.  *sb is the fstat of the
 * open file taken before its first byte is read: what the memo keys its
 * digest by.
 */
tc_status hash_path(const char *path, uint8_t out[TC_DIGEST_BYTES],
		    struct stat *sb, unsigned char *buf, size_t buflen)
{
	tc_status st;
	int fd, saved;

	do
		fd = open(path, O_RDONLY|O_CLOEXEC|O_NOCTTY|O_NONBLOCK);
	while (fd == -1 && errno == EINTR);
	if (fd == -1)
		return TC_EIO;
	if (fstat(fd, sb) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return TC_EIO;
	}
	if (!S_ISREG(sb->st_mode)) {
		close(fd);
		errno = S_ISDIR(sb->st_mode) ? EISDIR : EINVAL;
		return TC_EIO;
	}
	st = hash_fd(fd, out, buf, buflen);
	saved = errno;
	close(fd);
	errno = saved;
	return st;
}

tc_status tc_hash_file(const char *path, uint8_t out[TC_DIGEST_BYTES])
{
	struct stat sb;
	unsigned char *buf;
	tc_status st;
	int saved;

	if ((buf = malloc(HASH_CHUNK)) == NULL)
		return TC_ENOMEM;
	st = hash_path(path, out, &sb, buf, HASH_CHUNK);
	saved = errno;
	free(buf);
	errno = saved;
	return st;
}

/* The names a listing digest covers: not . and .., nor the __pycache__
 * an import beside the sources makes (the plugin's listing_digest). */
static int hash_listed(const struct dirent *d)
{
	return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0 &&
	    strcmp(d->d_name, "__pycache__") != 0;
}

/* Byte order, as Python sorts bytes; alphasort would follow the locale. */
static int hash_cmp_dirent(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/*
 * The digest the pytest plugin records for a directory a test listed:
 * BLAKE2b-256, personalised "tcache-dirlist", of its sorted entry names,
 * each followed by a NUL.
 */
tc_status hash_listing(const char *path, uint8_t out[TC_DIGEST_BYTES])
{
	struct dirent **names;
	hash_state st;
	int n, i;

	if ((n = scandir(path, &names, hash_listed, hash_cmp_dirent)) < 0)
		return errno == ENOMEM ? TC_ENOMEM : TC_EIO;
	hash_start(&st, hash_person_dir);
	for (i = 0; i < n; i++) {
		hash_update(&st, names[i]->d_name,
		    strlen(names[i]->d_name) + 1);
		free(names[i]);
	}
	free(names);
	hash_final(&st, out);
	return TC_OK;
}

/* memcmp order with a prefix first: exactly strcmp, which compares as
 * unsigned char. */
static int hash_cmp_input(const void *a, const void *b)
{
	const tc_input *x = *(const tc_input *const *)a;
	const tc_input *y = *(const tc_input *const *)b;

	return strcmp(x->path, y->path);
}

static int hash_cmp_env(const void *a, const void *b)
{
	const tc_env *x = *(const tc_env *const *)a;
	const tc_env *y = *(const tc_env *const *)b;

	return strcmp(x->name, y->name);
}

/* Sorts pointers to the n items and refuses two that compare equal.
 * Inputs mostly come sorted (tc_inputs_collect sorts them): one pass that
 * finds them in strict order spares the sort. */
static tc_status hash_sort(const void **v, size_t n,
			   int (*cmp)(const void *, const void *))
{
	size_t i;

	for (i = 1; i < n && cmp(&v[i - 1], &v[i]) < 0; i++)
		;
	if (i >= n)
		return TC_OK;
	qsort(v, n, sizeof *v, cmp);
	for (i = 1; i < n; i++) {
		if (cmp(&v[i - 1], &v[i]) == 0)
			return TC_EINVAL;
	}
	return TC_OK;
}

tc_status tc_source_digest(const tc_input *inputs, size_t n,
			   uint8_t out[TC_DIGEST_BYTES])
{
	hash_state st;
	const void **v;
	const tc_input *in;
	size_t m = 0;
	tc_status rc;

	if (n > UINT32_MAX || (n > 0 && inputs == NULL))
		return TC_EINVAL;
	if ((v = calloc(n > 0 ? n : 1, sizeof *v)) == NULL)
		return TC_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (inputs[i].kind != TC_INPUT_FILE)
			continue;
		if (inputs[i].path == NULL ||
		    strlen(inputs[i].path) > UINT32_MAX) {
			free(v);
			return TC_EINVAL;
		}
		v[m++] = &inputs[i];
	}
	if ((rc = hash_sort(v, m, hash_cmp_input)) != TC_OK) {
		free(v);
		return rc;
	}
	hash_start(&st, hash_person_src);
	hash_u32(&st, (uint32_t)m);
	for (size_t i = 0; i < m; i++) {
		in = v[i];
		hash_str(&st, in->path, strlen(in->path));
		hash_update(&st, in->digest, TC_DIGEST_BYTES);
	}
	hash_final(&st, out);
	free(v);
	return TC_OK;
}

static int hash_env_valid(const tc_env *e)
{
	if (e->name == NULL || strlen(e->name) > UINT32_MAX)
		return 0;
	return e->value == NULL || strlen(e->value) <= UINT32_MAX;
}

/* A set variable is u8(1) || str(value), an unset one u8(0). */
static void hash_env_value(hash_state *st, const char *value)
{
	unsigned char tag = value != NULL;

	hash_update(st, &tag, 1);
	if (value != NULL)
		hash_str(st, value, strlen(value));
}

tc_status tc_env_digest(const tc_env *vars, size_t n,
			uint8_t out[TC_DIGEST_BYTES])
{
	hash_state st;
	const void **v;
	const tc_env *e;
	tc_status rc;

	if (n > UINT32_MAX || (n > 0 && vars == NULL))
		return TC_EINVAL;
	if ((v = calloc(n > 0 ? n : 1, sizeof *v)) == NULL)
		return TC_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!hash_env_valid(&vars[i])) {
			free(v);
			return TC_EINVAL;
		}
		v[i] = &vars[i];
	}
	if ((rc = hash_sort(v, n, hash_cmp_env)) != TC_OK) {
		free(v);
		return rc;
	}
	hash_start(&st, hash_person_env);
	hash_u32(&st, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		e = v[i];
		hash_str(&st, e->name, strlen(e->name));
		hash_env_value(&st, e->value);
	}
	hash_final(&st, out);
	free(v);
	return TC_OK;
}

/* NULL project or test is the empty string: the default project is "". */
void tc_key_derive(const char *project, const char *test,
		   const uint8_t src[TC_DIGEST_BYTES],
		   const uint8_t env[TC_DIGEST_BYTES],
		   uint8_t out[TC_DIGEST_BYTES])
{
	hash_state st;

	if (project == NULL)
		project = "";
	if (test == NULL)
		test = "";
	hash_start(&st, hash_person_key);
	hash_str(&st, project, strlen(project));
	hash_str(&st, test, strlen(test));
	hash_update(&st, src, TC_DIGEST_BYTES);
	hash_update(&st, env, TC_DIGEST_BYTES);
	hash_final(&st, out);
}

void tc_hex(const uint8_t digest[TC_DIGEST_BYTES], char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < TC_DIGEST_BYTES; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 0xf];
	}
	hex[2 * TC_DIGEST_BYTES] = '\0';
}

static int hash_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Writes digest only when all of hex is good. */
int tc_unhex(const char *hex, uint8_t digest[TC_DIGEST_BYTES])
{
	uint8_t tmp[TC_DIGEST_BYTES];
	int hi, lo;

	if (hex == NULL)
		return -1;
	for (size_t i = 0; i < TC_DIGEST_BYTES; i++) {
		if ((hi = hash_nibble(hex[2 * i])) == -1)
			return -1;
		if ((lo = hash_nibble(hex[2 * i + 1])) == -1)
			return -1;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[2 * TC_DIGEST_BYTES] != '\0')
		return -1;
	memcpy(digest, tmp, sizeof tmp);
	return 0;
}
