#include <stdio.h>

#include "calc.h"

int main(void)
{
	long v;

	if (!calc_parse("42", &v) || v != 42 || calc_parse("4x", &v) ||
	    calc_parse("", &v)) {
		fprintf(stderr, "calc_parse is wrong\n");
		return 1;
	}
	puts("parse ok");
	return 0;
}
