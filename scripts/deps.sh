#!/bin/sh
# Installs the Debian packages tcache needs when run as root; otherwise
# prints the exact command to run and fails.  Usage: deps.sh PACKAGE...
set -u
missing=
for p in "$@"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || st=
	case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "tcache: installing Debian packages:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	apt-get install -y -q $missing >&2 && exit 0
	apt-get update -q >&2 && apt-get install -y -q $missing >&2 && exit 0
	echo "tcache: apt-get install failed" >&2
	exit 1
fi
echo "tcache: missing Debian packages. Run:" >&2
echo "    sudo apt-get install -y$missing" >&2
exit 1
