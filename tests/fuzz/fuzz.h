/*
 * The one entry point shared by the libFuzzer build (clang, `make fuzz`)
 * and the plain replay driver (`make fuzz-replay`, run by `make check`), so
 * that the corpus is replayed through exactly the code that was fuzzed.
 */
#ifndef TC_FUZZ_H
#define TC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Counts kept by the harness, for the replay's report: a corpus that never
 * decodes a frame would prove nothing. */
extern unsigned long fuzz_frames_ok;
extern unsigned long fuzz_frames_refused;

#endif
