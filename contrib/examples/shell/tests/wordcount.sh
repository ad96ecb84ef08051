#!/bin/sh
# tcache-dep: bin/wordcount
set -eu
cd "$(dirname "$0")/.."
n=$(printf 'one two\nthree\n\n' | bin/wordcount)
[ "$n" = 3 ] || { echo "wordcount says $n, not 3" >&2; exit 1; }
echo "wordcount ok"
