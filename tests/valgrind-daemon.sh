#!/bin/sh
# Stands in for build/tcached in `make valgrind`: runs the real daemon under
# memcheck, failing its exit status on any error or leak; one log per pid.
# (Not TCACHE_* variables: the tests clear those from a daemon's environment.)
exec valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	--log-file="$VG_TCACHED_LOGS/vg.%p.log" "$VG_TCACHED" "$@"
