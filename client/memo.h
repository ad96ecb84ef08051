/*
 * Inside libtcache: what hash.c, memo.c and collect.c share and the public
 * API does not show.
 */
#ifndef TC_MEMO_H
#define TC_MEMO_H

#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>

#include "tcache.h"

/* Bytes read from a file at a time: a small file in one read. */
#define HASH_CHUNK (128u * 1024u)

/* hash.c: the file digest of bytes (tc_hash_bytes). */
void hash_plain(const void *data, size_t len, uint8_t out[TC_DIGEST_BYTES]);
/* hash.c: the digest of a directory's sorted entry names, as the pytest
 * plugin records a directory a test listed. */
tc_status hash_listing(const char *path, uint8_t out[TC_DIGEST_BYTES]);
/* hash.c: opens, fstats (into *sb, before reading) and hashes the regular
 * file at path, reading into buf; TC_EIO with errno on failure. */
tc_status hash_path(const char *path, uint8_t out[TC_DIGEST_BYTES],
		    struct stat *sb, unsigned char *buf, size_t buflen);

/* What hashing a file costs over its size, in bytes of hashing: ~5
 * syscalls, a few microseconds, as long as hashing 4 KiB at 1 GB/s.
 * Reading the memo costs about as much a byte of it. */
#define MEMO_FILE_COST 4096u

/* memo.c: 1 when m is worth using for files whose hashing would cost work
 * (bytes, MEMO_FILE_COST a file): loaded already, or not larger than that;
 * then it is loaded.  0 when m is NULL or the files are hashed sooner. */
int memo_wanted(tc_memo *m, uint64_t work);
/* memo.c: the time to compare a file's timestamps with before hashing it
 * (CLOCK_REALTIME_COARSE, the clock file timestamps come from), ns. */
int64_t memo_clock(void);
/* memo.c: 1 and the digest in out when m holds one for the absolute path
 * abs whose stat is *sb; 0 otherwise.  m may be NULL. */
int memo_lookup(tc_memo *m, const char *abs, const struct stat *sb,
		uint8_t out[TC_DIGEST_BYTES]);
/* memo.c: remembers that abs, whose fstat before its read was *sb, hashed
 * to digest, unless its timestamps are within the racy window of t_read
 * (memo_clock() taken before it was opened).  m may be NULL. */
void memo_store(tc_memo *m, const char *abs, const struct stat *sb,
		const uint8_t digest[TC_DIGEST_BYTES], int64_t t_read);

#endif
