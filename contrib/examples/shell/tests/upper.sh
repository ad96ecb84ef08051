#!/bin/sh
# tcache-dep: lib/strings.sh
set -eu
cd "$(dirname "$0")/.."
. ./lib/strings.sh
[ "$(upper 'abc Def')" = "ABC DEF" ] || { echo "upper is wrong" >&2; exit 1; }
echo "upper ok"
