/*
 * Releasing the structs of tcache.h that the decoder and the store fill with
 * malloc'd strings and lists.  Both sides free them the same way.
 */
#include <stdlib.h>

#include "proto.h"

void proto_inputs_free(tc_input *in, size_t n)
{
	if (in == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(in[i].path);
	free(in);
}

void proto_result_clear(tc_result *r)
{
	proto_inputs_free(r->inputs, r->ninputs);
	r->inputs = NULL;
	r->ninputs = 0;
}

void proto_entry_clear(tc_entry *e)
{
	free(e->project);
	free(e->test);
	free(e->root);
	free(e->message);
	e->project = e->test = e->root = e->message = NULL;
}

void proto_entries_free(tc_entry *e, size_t n)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		proto_entry_clear(&e[i]);
	free(e);
}

void proto_stats_free(tc_stat *st, size_t n)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(st[i].name);
	free(st);
}

void proto_slow_free(tc_slow *s, size_t n)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(s[i].project);
		free(s[i].test);
	}
	free(s);
}
