#include <stdio.h>

#include "calc.h"

int main(void)
{
	if (calc_add(2, 3) != 5 || calc_add(-2, 2) != 0) {
		fprintf(stderr, "calc_add is wrong\n");
		return 1;
	}
	puts("add ok");
	return 0;
}
