#!/bin/sh
# Runs each tests/NAME.sh through `tcache run`: a test whose inputs have not
# changed since it last passed is skipped.  Exits 1 when any test failed.
#
# A test's inputs: the script itself and every path it names in a line
# `# tcache-dep: PATH` (a file, or a directory for everything below it;
# relative to this directory, no spaces).  A path it uses but does not name
# is a stale pass waiting to happen: when in doubt, name the directory.
set -eu
cd "$(dirname "$0")"
failed=
for t in tests/*.sh; do
	name=$(basename "$t" .sh)
	deps=$(sed -n 's/^# tcache-dep: */--dep /p' "$t")
	# shellcheck disable=SC2086 # $deps is "--dep PATH" words
	tcache run --test "sh:$name" --dep "$t" $deps -- "./$t" ||
	    failed="$failed $name"
done
if [ -n "$failed" ]; then
	echo "failed:$failed" >&2
	exit 1
fi
