/*
 * The population of bench/scale.py's databases, shared by scale_db.c
 * (which writes it) and scale_client.c (which looks it up and records more
 * of it): a pure function of (seed, entry number), so neither reads the
 * other's output.
 *
 * SCALE_SETS input sets in SCALE_GROUPS groups (two versions of each test
 * module's inputs, as after an edit); entry i belongs to set
 * scale_set_of(i), in runs of SCALE_MODULE_TESTS tests.  Every set
 * declares ROOT/conftest.py, so invalidating ROOT removes every entry;
 * the sets of group g declare ROOT/src/gNNN/api.py and entries discover
 * files under ROOT/src/gNNN/ for a random g, so invalidating ROOT/src/gNNN
 * removes about 2 / SCALE_GROUPS of them (1 %).
 */
#ifndef BENCH_SCALE_H
#define BENCH_SCALE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SCALE_DIGEST 32
#define SCALE_PATH 128
#define SCALE_SETS 400u
#define SCALE_GROUPS 200u
#define SCALE_MODULE_TESTS 50u
#define SCALE_SET_ROWS 10
#define SCALE_FOUND_MAX 2
#define SCALE_ROOT "/home/dev/project"
#define SCALE_PROJECT "bench"
#define SCALE_KIND_FILE 0
#define SCALE_KIND_FOUND 1
#define SCALE_KIND_ENV 2
#define SCALE_KIND_IFACE 3

struct scale_input {
	unsigned char kind;
	char path[SCALE_PATH];
	uint8_t digest[SCALE_DIGEST];
};

/* splitmix64 of (a, b): cheap, deterministic, well mixed. */
static inline uint64_t scale_mix(uint64_t a, uint64_t b)
{
	uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void scale_bytes(uint64_t a, uint64_t b, uint8_t *out)
{
	for (int k = 0; k < SCALE_DIGEST / 8; k++) {
		uint64_t v = scale_mix(a + (uint64_t)k * 0x10001, b);

		for (int j = 0; j < 8; j++)
			out[k * 8 + j] = (uint8_t)(v >> (8 * j));
	}
}

static inline void scale_key(uint64_t seed, uint64_t i, uint8_t *key)
{
	scale_bytes(seed * 7 + 1, i, key);
}

/* A file's digest: a function of its path (a file has one content). */
static inline void scale_file_digest(const char *path, uint8_t *d)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = path; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	scale_bytes(h, 0xd16e57, d);
}

static inline unsigned scale_set_of(uint64_t i)
{
	return (unsigned)((i / SCALE_MODULE_TESTS) % SCALE_SETS);
}

static inline void scale_test(uint64_t i, char *buf, size_t len)
{
	unsigned set = scale_set_of(i);

	snprintf(buf, len, "tests/g%03u/test_v%u.py::test_case_%07llu",
	    set % SCALE_GROUPS, set / SCALE_GROUPS, (unsigned long long)i);
}

/* 94 % pass, 3 % fail, 3 % skip. */
static inline int scale_outcome(uint64_t h)
{
	unsigned r = (unsigned)(h % 100);

	return r < 94 ? 1 : r < 97 ? 2 : 3;
}

static inline void scale_row(struct scale_input *in, int kind,
    const char *path)
{
	in->kind = (unsigned char)kind;
	snprintf(in->path, sizeof in->path, "%s", path);
	scale_file_digest(path, in->digest);
}

/* The rows of set j, sorted as store.c sorts them (kind, then path). */
static inline size_t scale_set_rows(unsigned j, struct scale_input *in)
{
	unsigned g = j % SCALE_GROUPS, v = j / SCALE_GROUPS;
	char p[SCALE_PATH];
	size_t n = 0;

	scale_row(&in[n++], SCALE_KIND_FILE, "conftest.py");
	scale_row(&in[n++], SCALE_KIND_FILE, "pyproject.toml");
	snprintf(p, sizeof p, "tests/g%03u/conftest.py", g);
	scale_row(&in[n++], SCALE_KIND_FILE, p);
	snprintf(p, sizeof p, "tests/g%03u/test_v%u.py", g, v);
	scale_row(&in[n++], SCALE_KIND_FILE, p);
	scale_row(&in[n++], SCALE_KIND_ENV, "PYTHONHASHSEED");
	scale_row(&in[n++], SCALE_KIND_ENV, "TZ");
	scale_row(&in[n++], SCALE_KIND_IFACE, "src/core/__init__.py");
	scale_row(&in[n++], SCALE_KIND_IFACE, "src/core/util.py");
	snprintf(p, sizeof p, "src/g%03u/__init__.py", g);
	scale_row(&in[n++], SCALE_KIND_IFACE, p);
	snprintf(p, sizeof p, "src/g%03u/api.py", g);
	scale_row(&in[n++], SCALE_KIND_IFACE, p);
	/* An env input's digest is of its value: one value for all. */
	scale_bytes(0xe4, 0, in[4].digest);
	scale_bytes(0xe4, 1, in[5].digest);
	return n;
}

/* Entry i's discovered files: 0, 1, 1 or 2 body files of random groups. */
static inline size_t scale_found(uint64_t seed, uint64_t i,
    struct scale_input *in)
{
	static const unsigned count[4] = { 0, 1, 1, 2 };
	uint64_t h = scale_mix(seed ^ 0xf0d, i);
	size_t n = count[h & 3];
	char p[SCALE_PATH];

	for (size_t k = 0; k < n; k++) {
		unsigned g = (unsigned)((h >> (8 + 20 * k)) % SCALE_GROUPS);
		unsigned f = (unsigned)((h >> (20 + 20 * k)) % 4);

		snprintf(p, sizeof p, "src/g%03u/impl%u.py", g, f);
		scale_row(&in[k], SCALE_KIND_FOUND, p);
	}
	/* Two files of one group: the same sorted, distinct order store.c
	 * keeps (its primary key is entry, kind, path). */
	if (n == 2) {
		int c = 0;

		for (size_t k = 0; in[0].path[k] || in[1].path[k]; k++)
			if (in[0].path[k] != in[1].path[k]) {
				c = (unsigned char)in[0].path[k] -
				    (unsigned char)in[1].path[k];
				break;
			}
		if (c == 0)
			n = 1;
		else if (c > 0) {
			struct scale_input t = in[0];

			in[0] = in[1];
			in[1] = t;
		}
	}
	return n;
}

#endif
