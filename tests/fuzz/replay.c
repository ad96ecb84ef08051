/*
 * Replays a libFuzzer corpus through the fuzz harness without libFuzzer:
 * built by the normal compiler (with ASan and UBSan when it has them) so
 * that `make check` exercises every corpus file on a machine without clang.
 * Usage: replay FILE-OR-DIR...  Fails when a check in the harness fails,
 * when a file cannot be read, or when nothing at all decoded.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static unsigned long nfiles;

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			uint8_t *p;

			cap = cap ? cap * 2 : 4096;
			if ((p = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "replay: %s: out of memory\n", path);
				free(buf);
				fclose(f);
				return -1;
			}
			buf = p;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	/* Exactly len bytes, as libFuzzer passes them: ASan then sees a read
	 * past the end of the input. */
	{
		uint8_t *exact = malloc(len ? len : 1);

		if (exact == NULL) {
			free(buf);
			return -1;
		}
		if (len > 0)
			memcpy(exact, buf, len);
		free(buf);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
	}
	nfiles++;
	return 0;
}

static int replay_path(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		char sub[4096];

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path,
		    de->d_name) >= sizeof sub) {
			fprintf(stderr, "replay: %s/%s: name too long\n", path,
			    de->d_name);
			rc = -1;
			continue;
		}
		if (replay_path(sub) == -1)
			rc = -1;
		errno = 0;
	}
	if (errno != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: replay FILE-OR-DIR...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i]) == -1)
			rc = 1;
	printf("fuzz replay: %lu files, %lu frames decoded, %lu refused\n",
	    nfiles, fuzz_frames_ok, fuzz_frames_refused);
	if (nfiles == 0 || fuzz_frames_ok == 0 || fuzz_frames_refused == 0) {
		fprintf(stderr, "replay: the corpus decoded nothing, or refused "
		    "nothing: it proves little\n");
		rc = 1;
	}
	return rc;
}
