/*
 * Logging to stderr (the service manager's journal) or to --log FILE, which
 * SIGHUP reopens so that logrotate can move it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcached.h"

static FILE *log_file;		/* NULL: stderr */
static const char *log_path;

int log_open(const char *path)
{
	FILE *f;

	if (path == NULL)
		return 0;
	if ((f = fopen(path, "ae")) == NULL)
		return -1;
	setvbuf(f, NULL, _IOLBF, 0);
	if (log_file != NULL)
		fclose(log_file);
	log_file = f;
	log_path = path;
	return 0;
}

void log_reopen(void)
{
	if (log_path != NULL && log_open(log_path) != 0)
		log_warn("cannot reopen log %s: %s", log_path, strerror(errno));
}

void log_close(void)
{
	if (log_file != NULL)
		fclose(log_file);
	log_file = NULL;
}

static void log_vwrite(const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_vwrite(const char *level, const char *fmt, va_list ap)
{
	FILE *out = log_file != NULL ? log_file : stderr;
	char stamp[32];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(out, "%s tcached[%ld]: %s", stamp, (long)getpid(), level);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	fflush(out);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite("", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite("warning: ", fmt, ap);
	va_end(ap);
}

const char *log_scrub(const char *s, char *buf, size_t len)
{
	size_t i;

	if (len == 0)
		return "";
	for (i = 0; s[i] != '\0' && i + 1 < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	buf[i] = '\0';
	return buf;
}
