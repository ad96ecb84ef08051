#include <errno.h>
#include <stdlib.h>

#include "calc.h"

int calc_parse(const char *s, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return end != s && *end == '\0' && errno == 0;
}
