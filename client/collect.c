/*
 * Turning the paths a caller names (--dep) into the declared inputs of a
 * key: each file hashed and named relative to the project root, so that a
 * moved checkout keeps its keys (proto/PROTOCOL.md, "Keys").
 *
 * Naming: a directory is resolved with realpath and walked; an existing
 * file is named by the realpath of its directory and its own name, so a
 * symbolic link keeps its name (as in a walk) and is hashed by its target's
 * bytes; a missing path is named the same way when its directory exists,
 * else by lexical normalisation against the current directory.  Walks skip
 * .git directories and fifos, sockets and devices; they follow symbolic
 * links to directories, naming the files below by the link's path (as
 * Python's os.walk(followlinks=True) does), since a directory stands for
 * every file below it (DESIGN.md), but never into a directory that is
 * already on the walk's path, which would loop.
 *
 * The walk only lists (and, with a memo, stats).  Then a file the memo
 * knows (memo.c) takes its digest from there, when the files are worth
 * more than loading the memo, and the others are hashed, by several
 * threads when there are many (hashing is the bulk of a cold run; the walk
 * is a stat per file).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "memo.h"
#include "tcache.h"

/*
 * Raw inputs gathered before duplicates are removed; more than the
 * TC_MAX_INPUTS a record can carry, so that naming one directory twice
 * does not fail, but a bound on a walk of a huge tree.
 */
#define COLLECT_MAX_RAW (4u * TC_MAX_INPUTS)

/*
 * Directories one collection may open.  Links that do not loop can still
 * reach one directory by 2^n paths (each of n levels linking twice to the
 * next), empty ones adding no inputs to stop at COLLECT_MAX_RAW: a bound
 * on that work, far above what a tree within the input limit needs.
 */
#define COLLECT_MAX_DIRS (4u * TC_MAX_INPUTS)

/* Fewer files than this are hashed by the calling thread alone: a thread
 * costs about what hashing a few small files does. */
#define COLLECT_PAR_MIN 32u
/* Threads at most, unless $TCACHE_HASH_THREADS says otherwise. */
#define COLLECT_MAX_THREADS 8u
#define COLLECT_THREADS_LIMIT 64u

/* A file to hash: its input, and what hashing it found. */
struct collect_job {
	size_t idx;			/* into collect.v */
	int64_t t_read;			/* memo_clock() before the open */
	struct stat sb;			/* the walk's stat (have_sb), then the
					   fstat before the read */
	uint8_t have_sb;
	uint8_t asked;			/* the memo did not know it */
	tc_status st;
	int error;
};

/* A directory being walked, and the one whose walk led to it. */
struct collect_dir {
	dev_t dev;
	ino_t ino;
	const struct collect_dir *up;
};

struct collect {
	char root[TC_MAX_PATH + 1];	/* realpath of the project root */
	size_t rootlen;
	tc_input *v;			/* inputs so far, each path malloc'd */
	size_t n;
	size_t cap;
	char *err;			/* the caller's message buffer */
	size_t errlen;
	char path[TC_MAX_PATH + 1];	/* absolute path being walked */
	char other[TC_MAX_PATH + 1];	/* a job's, while c->path walks */
	const struct collect_dir *walking; /* innermost directory walked */
	size_t ndirs;			/* directories opened so far */
	tc_memo *memo;			/* may be NULL */
	int use_memo;			/* memo worth loading: it learns too */
	uint64_t work;			/* what hashing the files so far would
					   cost, in bytes (MEMO_FILE_COST) */
	struct collect_job *jobs;	/* files left to hash */
	size_t njobs;
	size_t capjobs;
	atomic_size_t next;		/* the next job a thread takes */
};

static void collect_error(struct collect *, const char *, ...)
	__attribute__((format(printf, 2, 3)));
static tc_status collect_walk(struct collect *, size_t);
static void collect_recall(struct collect *);

static void collect_error(struct collect *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err == NULL || c->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
}

static tc_status collect_errno(struct collect *c, const char *path, int error)
{
	collect_error(c, "%s: %s", path, strerror(error));
	if (error == ENAMETOOLONG)
		return TC_EINVAL;
	return error == ENOMEM ? TC_ENOMEM : TC_EIO;
}

/* The name an absolute path has in an input: relative when under root. */
static const char *collect_name(const struct collect *c, const char *abs)
{
	if (strcmp(c->root, "/") == 0)
		return abs + 1;
	if (strncmp(abs, c->root, c->rootlen) == 0 && abs[c->rootlen] == '/')
		return abs + c->rootlen + 1;
	return abs;
}

static tc_status collect_add(struct collect *c, const char *abs,
			     const uint8_t *digest)
{
	tc_input *nv;
	size_t ncap;

	if (c->n == c->cap) {
		if (c->cap >= COLLECT_MAX_RAW) {
			collect_error(c, "%s: more than %u inputs", abs,
			    TC_MAX_INPUTS);
			return TC_EINVAL;
		}
		ncap = c->cap == 0 ? 64 : 2 * c->cap;
		if ((nv = reallocarray(c->v, ncap, sizeof *nv)) == NULL)
			return collect_errno(c, abs, ENOMEM);
		c->v = nv;
		c->cap = ncap;
	}
	if ((c->v[c->n].path = strdup(collect_name(c, abs))) == NULL)
		return collect_errno(c, abs, ENOMEM);
	c->v[c->n].kind = TC_INPUT_FILE;
	if (digest != NULL)
		memcpy(c->v[c->n].digest, digest, TC_DIGEST_BYTES);
	else
		memset(c->v[c->n].digest, 0, TC_DIGEST_BYTES);
	c->n++;
	return TC_OK;
}

/*
 * The regular file abs, whose stat is *sb (NULL when not taken): from the
 * memo, once the files met so far are worth reading it, else an input
 * whose digest a job fills in later (collect_recall asks the memo about
 * the first ones).
 */
static tc_status collect_file(struct collect *c, const char *abs,
			      const struct stat *sb)
{
	uint8_t digest[TC_DIGEST_BYTES];
	struct collect_job *nj, *j;
	struct stat own;
	size_t ncap;
	tc_status rc;
	int asked = 0;

	if (c->memo != NULL && sb == NULL && stat(abs, &own) == 0)
		sb = &own;
	if (c->memo != NULL && sb != NULL) {
		c->work += MEMO_FILE_COST + (sb->st_size > 0 ?
		    (uint64_t)sb->st_size : 0);
		/* From here on the memo, asked first about the files met
		 * so far: in walk order, the order it holds them in. */
		if (!c->use_memo && memo_wanted(c->memo, c->work)) {
			c->use_memo = 1;
			collect_recall(c);
		}
		if (c->use_memo) {
			if (memo_lookup(c->memo, abs, sb, digest))
				return collect_add(c, abs, digest);
			asked = 1;
		}
	}
	if ((rc = collect_add(c, abs, NULL)) != TC_OK)
		return rc;
	if (c->njobs == c->capjobs) {
		ncap = c->capjobs == 0 ? 64 : 2 * c->capjobs;
		if ((nj = reallocarray(c->jobs, ncap, sizeof *nj)) == NULL)
			return collect_errno(c, abs, ENOMEM);
		c->jobs = nj;
		c->capjobs = ncap;
	}
	j = &c->jobs[c->njobs++];
	j->idx = c->n - 1;
	j->st = TC_OK;
	j->error = 0;
	j->have_sb = sb != NULL;
	j->asked = (uint8_t)asked;
	if (sb != NULL)
		j->sb = *sb;
	return TC_OK;
}

/* A symbolic link met in a walk that leads nowhere (or round in circles
 * of links) is a missing file. */
static tc_status collect_dangling(struct collect *c, const char *abs,
				  int error)
{
	if (error == ENOENT || error == ENOTDIR || error == ELOOP)
		return collect_add(c, abs, NULL);
	return collect_errno(c, abs, error);
}

/*
 * One entry of the directory c->path[0..len), open as dfd, of readdir type
 * type: its path is left in c->path.  Without a memo a regular file needs
 * no stat; with one, its stat is all a known file costs.
 */
static tc_status collect_entry(struct collect *c, int dfd, size_t len,
			       const char *name, unsigned char type)
{
	struct stat sb;
	size_t nlen = strlen(name), sep = c->path[len - 1] != '/';

	if (len + sep + nlen > TC_MAX_PATH) {
		c->path[len] = '\0';
		collect_error(c, "%s/%s: path too long", c->path, name);
		return TC_EINVAL;
	}
	if (sep)
		c->path[len] = '/';
	memcpy(c->path + len + sep, name, nlen + 1);
	if (type == DT_REG && c->memo == NULL)
		return collect_file(c, c->path, NULL);
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			return TC_OK;
		return collect_errno(c, c->path, errno);
	}
	/* A link is what it leads to, under its own name. */
	if (S_ISLNK(sb.st_mode) && fstatat(dfd, name, &sb, 0) == -1)
		return collect_dangling(c, c->path, errno);
	if (S_ISDIR(sb.st_mode)) {
		if (strcmp(name, ".git") == 0)
			return TC_OK;
		return collect_walk(c, len + sep + nlen);
	}
	if (S_ISREG(sb.st_mode))
		return collect_file(c, c->path, &sb);
	return TC_OK;
}

/*
 * 1 when the directory open as d is one being walked already, reached
 * again through a link (or a bind mount) to itself or to one above it; 0
 * when not, self then filled in; -1 with errno.
 */
static int collect_looped(struct collect *c, DIR *d, struct collect_dir *self)
{
	struct stat sb;

	if (fstat(dirfd(d), &sb) == -1)
		return -1;
	self->dev = sb.st_dev;
	self->ino = sb.st_ino;
	self->up = c->walking;
	for (const struct collect_dir *w = c->walking; w != NULL; w = w->up)
		if (w->dev == self->dev && w->ino == self->ino)
			return 1;
	return 0;
}

/* Walks the directory whose absolute path is c->path[0..len). */
static tc_status collect_walk(struct collect *c, size_t len)
{
	struct collect_dir self;
	struct dirent *de;
	DIR *d;
	tc_status rc = TC_OK;
	int looped;

	c->path[len] = '\0';
	if (++c->ndirs > COLLECT_MAX_DIRS) {
		collect_error(c, "%s: more than %u directories", c->path,
		    COLLECT_MAX_DIRS);
		return TC_EINVAL;
	}
	if ((d = opendir(c->path)) == NULL)
		return collect_errno(c, c->path, errno);
	if ((looped = collect_looped(c, d, &self)) != 0) {
		if (looped == -1)
			rc = collect_errno(c, c->path, errno);
		closedir(d);
		return rc;
	}
	c->walking = &self;
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0) {
				c->path[len] = '\0';
				rc = collect_errno(c, c->path, errno);
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = collect_entry(c, dirfd(d), len, de->d_name, de->d_type);
		if (rc != TC_OK)
			break;
	}
	c->walking = self.up;
	closedir(d);
	c->path[len] = '\0';
	return rc;
}

static tc_status collect_realpath(struct collect *c, const char *path,
				  char *out)
{
	char *r;
	size_t len;

	if ((r = realpath(path, NULL)) == NULL)
		return collect_errno(c, path, errno);
	if ((len = strlen(r)) > TC_MAX_PATH) {
		collect_error(c, "%s: path too long", path);
		free(r);
		return TC_EINVAL;
	}
	memcpy(out, r, len + 1);
	free(r);
	return TC_OK;
}

/*
 * Makes path absolute against the current directory and removes ".", ".."
 * and repeated slashes without looking at the file system.
 */
static tc_status collect_lexical(struct collect *c, const char *path, char *out)
{
	char *buf, *p, *save = NULL;
	size_t len = 0, clen, need;

	if ((buf = malloc(2 * TC_MAX_PATH + 2)) == NULL)
		return collect_errno(c, path, ENOMEM);
	buf[0] = '\0';
	if (path[0] != '/' && getcwd(buf, TC_MAX_PATH + 1) == NULL) {
		free(buf);
		return collect_errno(c, path, errno);
	}
	if (strlen(path) > TC_MAX_PATH) {
		free(buf);
		collect_error(c, "%s: path too long", path);
		return TC_EINVAL;
	}
	strcat(buf, "/");
	strcat(buf, path);
	for (p = strtok_r(buf, "/", &save); p != NULL;
	    p = strtok_r(NULL, "/", &save)) {
		if (strcmp(p, ".") == 0)
			continue;
		if (strcmp(p, "..") == 0) {
			while (len > 0 && out[--len] != '/')
				;
			continue;
		}
		clen = strlen(p);
		if ((need = len + 1 + clen) > TC_MAX_PATH) {
			free(buf);
			collect_error(c, "%s: path too long", path);
			return TC_EINVAL;
		}
		out[len] = '/';
		memcpy(out + len + 1, p, clen);
		len = need;
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	free(buf);
	return TC_OK;
}

/*
 * The realpath of path's directory joined with its last component; -1
 * (nothing said in err) when the directory cannot be resolved or the last
 * component is not a plain name.
 */
static int collect_parent(const char *path, char *out)
{
	char dir[TC_MAX_PATH + 1];
	const char *base, *slash = strrchr(path, '/');
	char *r;
	size_t dlen, blen;

	base = slash == NULL ? path : slash + 1;
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return -1;
	if (slash == NULL)
		memcpy(dir, ".", 2);
	else if ((dlen = (size_t)(slash - path)) > TC_MAX_PATH)
		return -1;
	else if (dlen == 0)
		memcpy(dir, "/", 2);
	else {
		memcpy(dir, path, dlen);
		dir[dlen] = '\0';
	}
	if ((r = realpath(dir, NULL)) == NULL)
		return -1;
	dlen = strlen(r);
	blen = strlen(base);
	if (dlen + 1 + blen > TC_MAX_PATH) {
		free(r);
		return -1;
	}
	memcpy(out, r, dlen);
	free(r);
	if (dlen > 1)
		out[dlen++] = '/';
	memcpy(out + dlen, base, blen + 1);
	return 0;
}

static tc_status collect_path(struct collect *, const char *, int);

/*
 * A path that does not resolve may still name, once normalised, one that
 * exists: "build/../src/a.c" before build/ is made, or "a.c/" for a file.
 * Its input is then what exists there, never an absent file of the same
 * name with the all-zero digest, which would keep the key when a.c
 * changes.
 */
static tc_status collect_missing(struct collect *c, const char *path,
				 int again)
{
	char name[TC_MAX_PATH + 1];
	struct stat sb;
	tc_status rc;

	if (collect_parent(path, c->path) == -1 &&
	    (rc = collect_lexical(c, path, c->path)) != TC_OK)
		return rc;
	if (again || stat(c->path, &sb) == -1)
		return collect_add(c, c->path, NULL);
	memcpy(name, c->path, strlen(c->path) + 1);
	return collect_path(c, name, 1);
}

/* again: path is the normalised name of one that did not resolve. */
static tc_status collect_path(struct collect *c, const char *path, int again)
{
	struct stat sb;
	tc_status rc;

	if (path == NULL || *path == '\0') {
		collect_error(c, "empty path");
		return TC_EINVAL;
	}
	if (stat(path, &sb) == -1) {
		if (errno == ENOENT || errno == ENOTDIR)
			return collect_missing(c, path, again);
		return collect_errno(c, path, errno);
	}
	if (S_ISDIR(sb.st_mode)) {
		if ((rc = collect_realpath(c, path, c->path)) != TC_OK)
			return rc;
		return collect_walk(c, strlen(c->path));
	}
	if (!S_ISREG(sb.st_mode)) {
		collect_error(c, "%s: not a regular file or directory", path);
		return TC_EINVAL;
	}
	if (collect_parent(path, c->path) == -1 &&
	    (rc = collect_realpath(c, path, c->path)) != TC_OK)
		return rc;
	return collect_file(c, c->path, NULL);
}

/* The absolute path of input i, whose name collect_name made from one of
 * at most TC_MAX_PATH bytes, into out[TC_MAX_PATH + 1]. */
static void collect_abs(const struct collect *c, size_t i, char *out)
{
	const char *name = c->v[i].path;
	size_t len = 0, nlen = strlen(name);

	if (name[0] != '/') {
		if (strcmp(c->root, "/") != 0) {
			memcpy(out, c->root, c->rootlen);
			len = c->rootlen;
		}
		out[len++] = '/';
	}
	if (len + nlen > TC_MAX_PATH)	/* cannot be; cut rather than overrun */
		nlen = TC_MAX_PATH - len;
	memcpy(out + len, name, nlen);
	out[len + nlen] = '\0';
}

/* Takes jobs until none is left; any number of threads at once.  Each
 * writes only its own jobs and their inputs' digests. */
static void *collect_worker(void *arg)
{
	struct collect *c = arg;
	struct collect_job *j;
	unsigned char *buf = malloc(HASH_CHUNK);
	char *path = malloc(TC_MAX_PATH + 1);
	size_t i;

	while ((i = atomic_fetch_add(&c->next, 1)) < c->njobs) {
		j = &c->jobs[i];
		if (buf == NULL || path == NULL) {
			j->st = TC_ENOMEM;
			j->error = ENOMEM;
			continue;
		}
		collect_abs(c, j->idx, path);
		j->t_read = memo_clock();
		j->st = hash_path(path, c->v[j->idx].digest, &j->sb, buf,
		    HASH_CHUNK);
		j->error = j->st == TC_OK ? 0 : errno;
	}
	free(buf);
	free(path);
	return NULL;
}

/* How many threads hash n files: the CPUs we may run on, at most
 * COLLECT_MAX_THREADS, or $TCACHE_HASH_THREADS. */
static size_t collect_nthreads(size_t n)
{
	const char *v = getenv("TCACHE_HASH_THREADS");
	cpu_set_t set;
	long cpus = 0;
	size_t t;
	char *end;

	if (n < COLLECT_PAR_MIN)
		return 1;
	if (v != NULL && *v != '\0') {
		errno = 0;
		cpus = strtol(v, &end, 10);
		if (errno != 0 || *end != '\0' || cpus < 1)
			cpus = 0;
		else if (cpus > (long)COLLECT_THREADS_LIMIT)
			cpus = COLLECT_THREADS_LIMIT;
	}
	if (cpus == 0) {
		if (sched_getaffinity(0, sizeof set, &set) == 0)
			cpus = CPU_COUNT(&set);
		else if ((cpus = sysconf(_SC_NPROCESSORS_ONLN)) < 1)
			cpus = 1;
		if (cpus > (long)COLLECT_MAX_THREADS)
			cpus = COLLECT_MAX_THREADS;
	}
	t = (size_t)cpus;
	return t < n ? t : n;
}

/*
 * The memo's digests for the files met before the memo was found worth
 * reading (collect_file), once it is, or the whole walk makes it so; the
 * other jobs are left to hash.  Mid-walk too: c->path is left alone.
 */
static void collect_recall(struct collect *c)
{
	size_t k = 0;

	if (c->memo == NULL || c->njobs == 0)
		return;
	if (!c->use_memo && !(c->use_memo = memo_wanted(c->memo, c->work)))
		return;
	for (size_t i = 0; i < c->njobs; i++) {
		struct collect_job *j = &c->jobs[i];

		if (j->have_sb && !j->asked) {
			j->asked = 1;
			collect_abs(c, j->idx, c->other);
			if (memo_lookup(c->memo, c->other, &j->sb,
			    c->v[j->idx].digest))
				continue;
		}
		c->jobs[k++] = *j;
	}
	c->njobs = k;
}

/*
 * Hashes every job, then takes their results in input order: a file gone
 * since it was listed is missing (all-zero digest), another failure ends
 * the collection naming it, and the memo learns the rest.  The threads
 * block every signal, so that a handler of the caller's runs in its own
 * thread.
 */
static tc_status collect_hash(struct collect *c)
{
	pthread_t tids[COLLECT_THREADS_LIMIT];
	size_t nt = collect_nthreads(c->njobs), started = 0;
	sigset_t all, old;
	struct collect_job *j;
	tc_status rc = TC_OK;

	atomic_store(&c->next, 0);
	if (nt > 1) {
		sigfillset(&all);
		if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0)
			nt = 1;
		for (; started + 1 < nt; started++)
			if (pthread_create(&tids[started], NULL, collect_worker,
			    c) != 0)
				break;	/* the ones started, and we, do it */
		if (nt > 1)
			pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	collect_worker(c);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	for (size_t i = 0; i < c->njobs && rc == TC_OK; i++) {
		j = &c->jobs[i];
		collect_abs(c, j->idx, c->path);
		if (j->st == TC_OK) {
			if (c->use_memo)
				memo_store(c->memo, c->path, &j->sb,
				    c->v[j->idx].digest, j->t_read);
			continue;
		}
		memset(c->v[j->idx].digest, 0, TC_DIGEST_BYTES);
		if (j->st == TC_EIO && j->error == ENOENT)
			continue;
		rc = collect_errno(c, c->path, j->st == TC_EIO ? j->error :
		    ENOMEM);
	}
	c->njobs = 0;
	return rc;
}

static int collect_cmp(const void *a, const void *b)
{
	return strcmp(((const tc_input *)a)->path, ((const tc_input *)b)->path);
}

/* Sorts and drops repeated paths (a file named twice, or also in a
 * directory named), keeping the first. */
static void collect_sort(struct collect *c)
{
	size_t i, j = 0;

	if (c->n == 0)
		return;
	qsort(c->v, c->n, sizeof *c->v, collect_cmp);
	for (i = 1; i < c->n; i++) {
		if (strcmp(c->v[i].path, c->v[j].path) == 0)
			free(c->v[i].path);
		else
			c->v[++j] = c->v[i];
	}
	c->n = j + 1;
}

static tc_status collect_all(struct collect *c, const char *root,
			     const char *const *paths, size_t npaths)
{
	tc_status rc;

	if ((rc = collect_realpath(c, root, c->root)) != TC_OK)
		return rc;
	c->rootlen = strlen(c->root);
	for (size_t i = 0; i < npaths; i++) {
		if ((rc = collect_path(c, paths[i], 0)) != TC_OK)
			return rc;
	}
	collect_recall(c);
	if ((rc = collect_hash(c)) != TC_OK)
		return rc;
	collect_sort(c);
	if (c->n > TC_MAX_INPUTS) {
		collect_error(c, "more than %u inputs", TC_MAX_INPUTS);
		return TC_EINVAL;
	}
	return TC_OK;
}

tc_status tc_inputs_collect(const char *root, const char *const *paths,
			    size_t npaths, tc_input **out, size_t *nout,
			    char *err, size_t errlen)
{
	return tc_inputs_collect_memo(NULL, root, paths, npaths, out, nout,
	    err, errlen);
}

tc_status tc_inputs_collect_memo(tc_memo *m, const char *root,
				 const char *const *paths, size_t npaths,
				 tc_input **out, size_t *nout,
				 char *err, size_t errlen)
{
	struct collect *c;
	tc_status rc;

	*out = NULL;
	*nout = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (npaths > 0 && paths == NULL)
		return TC_EINVAL;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return TC_ENOMEM;
	c->err = err;
	c->errlen = errlen;
	c->memo = m;
	rc = collect_all(c, root != NULL ? root : ".", paths, npaths);
	free(c->jobs);
	if (rc != TC_OK) {
		proto_inputs_free(c->v, c->n);
		free(c);
		return rc;
	}
	*out = c->v;
	*nout = c->n;
	free(c);
	return TC_OK;
}

void tc_inputs_free(tc_input *inputs, size_t n)
{
	proto_inputs_free(inputs, n);
}
