/*
 * Key derivation (proto/PROTOCOL.md, "Keys"): BLAKE2b-256 of files, the
 * source digest, the env digest and the key.  The one module that includes
 * sodium.h.  proto/vectors/vectors.txt, written by Python's hashlib, pins
 * every encoding here.
 *
 * File digests, the bulk of the bytes, go through a BLAKE2b of our own
 * (RFC 7693, unkeyed, 32-byte digest): libsodium's vectorised compression
 * runs at ~640 MB/s on our EPYC machines where plain 64-bit code with the
 * rounds unrolled (constant message indices) runs at ~1 GB/s, which is what
 * b2sum does.  tests/test_memo.c checks it against libsodium at every
 * length up to several blocks and at random ones.
 */
#include <sys/stat.h>

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

_Static_assert(HASH_PERSON == crypto_generichash_blake2b_PERSONALBYTES,
	       "personalisation size");
_Static_assert(TC_DIGEST_BYTES == crypto_generichash_blake2b_BYTES,
	       "a digest is BLAKE2b-256");

typedef crypto_generichash_blake2b_state hash_state;

/* --- BLAKE2b-256, unkeyed (RFC 7693) --- */

static const uint64_t b2_iv[8] = {
	0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL,
	0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
	0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
	0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL
};

/* Rounds 10 and 11 repeat the permutations of rounds 0 and 1. */
static const uint8_t b2_sigma[12][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
	{ 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
	{ 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
	{ 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
	{ 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
	{ 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
	{ 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
	{ 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
	{ 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 }
};

#define B2_BLOCK 128u

struct b2 {
	uint64_t h[8];
	uint64_t t;		/* bytes compressed so far: files < 2^64 */
	size_t nbuf;
	unsigned char buf[B2_BLOCK];
};

/* Compilers turn both into one load and one store on little-endian
 * machines; on others they are still right. */
static inline uint64_t b2_load(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
	    (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	    (uint64_t)p[7] << 56;
}

static inline void b2_store(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t b2_rotr(uint64_t x, int n)
{
	return x >> n | x << (64 - n);
}

#define B2_G(a, b, c, d, x, y) do {				\
	a = a + b + (x); d = b2_rotr(d ^ a, 32);		\
	c = c + d; b = b2_rotr(b ^ c, 24);			\
	a = a + b + (y); d = b2_rotr(d ^ a, 16);		\
	c = c + d; b = b2_rotr(b ^ c, 63);			\
} while (0)

/* Unrolled, so every message index is a constant: the speed of it. */
#define B2_ROUND(r) do {						\
	const uint8_t *s_ = b2_sigma[r];				\
	B2_G(v0, v4, v8, v12, m[s_[0]], m[s_[1]]);			\
	B2_G(v1, v5, v9, v13, m[s_[2]], m[s_[3]]);			\
	B2_G(v2, v6, v10, v14, m[s_[4]], m[s_[5]]);			\
	B2_G(v3, v7, v11, v15, m[s_[6]], m[s_[7]]);			\
	B2_G(v0, v5, v10, v15, m[s_[8]], m[s_[9]]);			\
	B2_G(v1, v6, v11, v12, m[s_[10]], m[s_[11]]);		\
	B2_G(v2, v7, v8, v13, m[s_[12]], m[s_[13]]);			\
	B2_G(v3, v4, v9, v14, m[s_[14]], m[s_[15]]);			\
} while (0)

static void b2_compress(struct b2 *s, const unsigned char *block, int last)
{
	uint64_t m[16];
	uint64_t v0, v1, v2, v3, v4, v5, v6, v7;
	uint64_t v8, v9, v10, v11, v12, v13, v14, v15;

	for (int i = 0; i < 16; i++)
		m[i] = b2_load(block + 8 * i);
	v0 = s->h[0]; v1 = s->h[1]; v2 = s->h[2]; v3 = s->h[3];
	v4 = s->h[4]; v5 = s->h[5]; v6 = s->h[6]; v7 = s->h[7];
	v8 = b2_iv[0]; v9 = b2_iv[1]; v10 = b2_iv[2]; v11 = b2_iv[3];
	v12 = b2_iv[4] ^ s->t;		/* the counter's high word stays 0 */
	v13 = b2_iv[5];
	v14 = last ? ~b2_iv[6] : b2_iv[6];
	v15 = b2_iv[7];
	B2_ROUND(0); B2_ROUND(1); B2_ROUND(2); B2_ROUND(3);
	B2_ROUND(4); B2_ROUND(5); B2_ROUND(6); B2_ROUND(7);
	B2_ROUND(8); B2_ROUND(9); B2_ROUND(10); B2_ROUND(11);
	s->h[0] ^= v0 ^ v8; s->h[1] ^= v1 ^ v9;
	s->h[2] ^= v2 ^ v10; s->h[3] ^= v3 ^ v11;
	s->h[4] ^= v4 ^ v12; s->h[5] ^= v5 ^ v13;
	s->h[6] ^= v6 ^ v14; s->h[7] ^= v7 ^ v15;
}

/* The parameter block of an unkeyed 32-byte digest: depth 1, fanout 1. */
static void b2_init(struct b2 *s)
{
	memcpy(s->h, b2_iv, sizeof s->h);
	s->h[0] ^= 0x01010000u | TC_DIGEST_BYTES;
	s->t = 0;
	s->nbuf = 0;
}

/* The last block is compressed by b2_final with the final flag, so a full
 * block is held back until more bytes come. */
static void b2_update(struct b2 *s, const unsigned char *p, size_t n)
{
	size_t fill;

	if (n == 0)
		return;
	fill = B2_BLOCK - s->nbuf;
	if (n > fill) {
		memcpy(s->buf + s->nbuf, p, fill);
		s->t += B2_BLOCK;
		b2_compress(s, s->buf, 0);
		s->nbuf = 0;
		p += fill;
		n -= fill;
		while (n > B2_BLOCK) {
			s->t += B2_BLOCK;
			b2_compress(s, p, 0);
			p += B2_BLOCK;
			n -= B2_BLOCK;
		}
	}
	memcpy(s->buf + s->nbuf, p, n);
	s->nbuf += n;
}

static void b2_final(struct b2 *s, uint8_t out[TC_DIGEST_BYTES])
{
	unsigned char full[64];

	s->t += s->nbuf;
	memset(s->buf + s->nbuf, 0, B2_BLOCK - s->nbuf);
	b2_compress(s, s->buf, 1);
	for (int i = 0; i < 8; i++)
		b2_store(full + 8 * i, s->h[i]);
	memcpy(out, full, TC_DIGEST_BYTES);
}

void hash_plain(const void *data, size_t len, uint8_t out[TC_DIGEST_BYTES])
{
	struct b2 s;

	b2_init(&s);
	b2_update(&s, data, len);
	b2_final(&s, out);
}


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
	struct b2 st;
	ssize_t n;

	b2_init(&st);
	for (;;) {
		n = read(fd, buf, buflen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		b2_update(&st, buf, (size_t)n);
	}
	if (n == -1)
		return TC_EIO;
	b2_final(&st, out);
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
