#!/bin/sh
# Builds this project, then runs each ctest test through `tcache run`, one
# `ctest -R '^NAME$'` at a time: a test whose inputs have not changed since
# it last passed is skipped.  Exits 1 when any test failed.
#
# A test's inputs (--dep, --env): the library (src/), the build definition
# (CMakeLists.txt), its own source (tests/NAME.c), and $CC and $CFLAGS.
# Narrower inputs skip more tests, wider ones fewer; a missing one is a
# stale pass.  The build comes first because the key is taken over the
# sources: the binary ctest runs must be the one built from them.
set -eu
cd "$(dirname "$0")"
cmake -S . -B build >/dev/null
cmake --build build >/dev/null
names=$(ctest --test-dir build -N | sed -n 's/^ *Test *#[0-9]*: //p')
failed=
for name in $names; do
	# -R takes a regular expression: match the name exactly.
	re=$(printf '%s\n' "$name" | sed 's/[][\\.*^$+?(){}|]/\\&/g')
	# --no-tests=error: a renamed test fails instead of passing as "none".
	tcache run --test "ctest:$name" --dep src/ --dep CMakeLists.txt \
	    --dep "tests/$name.c" --env CC --env CFLAGS -- \
	    ctest --test-dir build --output-on-failure --no-tests=error \
	    -R "^$re\$" || failed="$failed $name"
done
if [ -n "$failed" ]; then
	echo "failed:$failed" >&2
	exit 1
fi
