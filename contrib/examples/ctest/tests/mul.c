#include <stdio.h>

#include "calc.h"

int main(void)
{
	if (calc_mul(2, 3) != 6 || calc_mul(-2, 0) != 0) {
		fprintf(stderr, "calc_mul is wrong\n");
		return 1;
	}
	puts("mul ok");
	return 0;
}
