/*
 * Every limit of the wire protocol, in one place, with its reason.
 * Both tcached and libtcache enforce them; PROTOCOL.md documents them.
 */
#ifndef TC_LIMITS_H
#define TC_LIMITS_H

/* Protocol version spoken in HELLO.  Bump on any incompatible change. */
#define TC_PROTO_VERSION 1u

/* Bytes in the frame header: a big-endian u32 body length. */
#define TC_FRAME_HEADER 4u

/*
 * Largest frame body, in bytes.  Big enough for a batch of records whose
 * inputs run to thousands of paths; small enough that a hostile length
 * prefix cannot make the daemon allocate much.
 */
#define TC_MAX_FRAME (4u * 1024u * 1024u)

/* Keys in one LOOKUP, records in one RECORD: a whole test suite in a few
 * round trips, while one frame's work stays short on the event loop. */
#define TC_MAX_BATCH 4096u

/* Inputs (files and environment names) of one record. */
#define TC_MAX_INPUTS 16384u

/* Bytes of a path (PATH_MAX on Linux). */
#define TC_MAX_PATH 4096u

/* Bytes of a test id: pytest parametrised ids can be long. */
#define TC_MAX_TEST 4096u

/* Bytes of a project name, an environment variable name, a client name. */
#define TC_MAX_NAME 256u

/* Bytes of a record's message: a summary, not a log. */
#define TC_MAX_MESSAGE 1024u

/* Glob patterns for invalidate and ls. */
#define TC_MAX_PATTERN TC_MAX_TEST

/* Entries in one LIST reply; the client pages with a cursor. */
#define TC_MAX_LIST 1000u

/* Counters in one STATS reply. */
#define TC_MAX_STATS 64u

/* Entries in one SLOWEST reply: a screenful of the biggest savings. */
#define TC_MAX_SLOWEST 100u

/* Digest and key length: BLAKE2b-256. */
#define TC_DIGEST_LEN 32u

_Static_assert(TC_MAX_FRAME < 0x7fffffffu, "frame length fits a signed 32-bit int");
_Static_assert(TC_MAX_BATCH * (TC_DIGEST_LEN) < TC_MAX_FRAME, "a full lookup batch fits a frame");
_Static_assert(TC_MAX_PATH + TC_MAX_TEST + TC_MAX_MESSAGE < TC_MAX_FRAME, "one record of maximal strings fits a frame");

#endif
