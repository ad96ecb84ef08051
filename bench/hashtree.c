/*
 * bench/hashtree: one whole process of the "hashing" bench part
 * (bench/hashing.py).
 *
 *   hashtree collect [--memo FILE | --no-memo] [--list] ROOT DIR
 *       what `tcache key --dep DIR` does to the tree: tc_inputs_collect_memo
 *       under ROOT, the source digest, the memo written back.  Prints
 *       "files N hits H hashed X racy R src HEX" (and with --list each
 *       "DIGEST  PATH" as b2sum -l 256 does, for the bench to compare).
 *   hashtree lstat PATH...
 *       the reference of a warm run: lstat each path and nothing else.
 *       Prints the number of regular files.
 *   hashtree walk DIR
 *       readdir and fstatat through DIR (what find -type f costs): a
 *       second, looser reference.  Prints the number of regular files.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/tcache.h"

static int usage(void)
{
	fprintf(stderr, "usage: hashtree collect [--memo FILE | --no-memo] "
	    "[--list] ROOT DIR\n       hashtree lstat PATH...\n"
	    "       hashtree walk DIR\n");
	return 2;
}

static int do_collect(int argc, char **argv)
{
	const char *memo_path = NULL, *root, *dir;
	char err[512] = "", hex[2 * TC_DIGEST_BYTES + 1];
	uint8_t src[TC_DIGEST_BYTES];
	int use_memo = 1, list = 0, i;
	tc_memo *memo = NULL;
	tc_memo_counts counts;
	tc_input *in;
	size_t n;
	tc_status st;

	for (i = 0; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--memo") == 0 && i + 1 < argc)
			memo_path = argv[++i];
		else if (strcmp(argv[i], "--no-memo") == 0)
			use_memo = 0;
		else if (strcmp(argv[i], "--list") == 0)
			list = 1;
		else
			return usage();
	}
	if (argc - i != 2)
		return usage();
	root = argv[i];
	dir = argv[i + 1];
	if (use_memo && (st = tc_memo_open(memo_path, &memo)) != TC_OK) {
		fprintf(stderr, "hashtree: memo: %s\n", tc_status_name(st));
		return 1;
	}
	st = tc_inputs_collect_memo(memo, root, &dir, 1, &in, &n, err,
	    sizeof err);
	if (st != TC_OK) {
		fprintf(stderr, "hashtree: %s\n", *err ? err :
		    tc_status_name(st));
		tc_memo_free(memo);
		return 1;
	}
	if (tc_source_digest(in, n, src) != TC_OK) {
		fprintf(stderr, "hashtree: source digest\n");
		return 1;
	}
	if (memo != NULL && (st = tc_memo_save(memo)) != TC_OK)
		fprintf(stderr, "hashtree: memo not saved: %s\n",
		    tc_status_name(st));
	tc_memo_counts_get(memo, &counts);
	if (list) {
		for (size_t k = 0; k < n; k++) {
			tc_hex(in[k].digest, hex);
			printf("%s  %s\n", hex, in[k].path);
		}
	}
	tc_hex(src, hex);
	printf("files %zu hits %llu hashed %llu racy %llu src %s\n", n,
	    (unsigned long long)counts.hits,
	    (unsigned long long)counts.hashed,
	    (unsigned long long)counts.racy, hex);
	tc_inputs_free(in, n);
	tc_memo_free(memo);
	return 0;
}

static int do_lstat(int argc, char **argv)
{
	struct stat sb;
	long files = 0;

	for (int i = 0; i < argc; i++) {
		if (lstat(argv[i], &sb) == -1) {
			fprintf(stderr, "hashtree: %s: %s\n", argv[i],
			    strerror(errno));
			return 1;
		}
		files += S_ISREG(sb.st_mode);
	}
	printf("%ld\n", files);
	return 0;
}

static long walk(int dfd, const char *name)
{
	struct dirent *de;
	struct stat sb;
	long files = 0, sub;
	int fd;
	DIR *d;

	if ((fd = openat(dfd, name, O_RDONLY|O_DIRECTORY|O_CLOEXEC)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		fprintf(stderr, "hashtree: %s: %s\n", name, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb,
		    AT_SYMLINK_NOFOLLOW) == -1) {
			fprintf(stderr, "hashtree: %s: %s\n", de->d_name,
			    strerror(errno));
			closedir(d);
			return -1;
		}
		if (S_ISDIR(sb.st_mode)) {
			if ((sub = walk(dirfd(d), de->d_name)) < 0) {
				closedir(d);
				return -1;
			}
			files += sub;
		} else if (S_ISREG(sb.st_mode)) {
			files++;
		}
	}
	closedir(d);
	return files;
}

int main(int argc, char **argv)
{
	long files;

	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "collect") == 0)
		return do_collect(argc - 2, argv + 2);
	if (strcmp(argv[1], "lstat") == 0)
		return do_lstat(argc - 2, argv + 2);
	if (strcmp(argv[1], "walk") == 0 && argc == 3) {
		if ((files = walk(AT_FDCWD, argv[2])) < 0)
			return 1;
		printf("%ld\n", files);
		return 0;
	}
	return usage();
}
