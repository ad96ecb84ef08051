#ifndef CALC_H
#define CALC_H

long calc_add(long a, long b);
long calc_mul(long a, long b);
/* The value of a decimal string, 0 when it is not one. */
int calc_parse(const char *s, long *out);

#endif
