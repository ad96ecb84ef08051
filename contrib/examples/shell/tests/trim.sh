#!/bin/sh
# tcache-dep: lib/strings.sh
set -eu
cd "$(dirname "$0")/.."
. ./lib/strings.sh
[ "$(trim '  a b  ')" = "a b" ] || { echo "trim is wrong" >&2; exit 1; }
echo "trim ok"
