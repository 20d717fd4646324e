#!/bin/sh
# One-step set-up on a fresh Debian 12 machine: install what the build and the
# tests need, then configure and build.
#   ./bootstrap.sh                 build
#   ./bootstrap.sh --check         build, then run `make check`
#   ./bootstrap.sh --demo          build, then start the workbench on the demo
#   ./bootstrap.sh --sanitizers    build with ASan/UBSan (combine with --check)
set -eu
cd "$(dirname "$0")"

check=no demo=no san=no
for a in "$@"; do
	case "$a" in
	--check) check=yes ;;
	--demo) demo=yes ;;
	--sanitizers) san=yes ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "bootstrap.sh: unknown option $a" >&2; exit 2 ;;
	esac
done

pkgs="build-essential autoconf automake pkg-config libncurses-dev libyaml-dev
      libsqlite3-dev libjansson-dev check tmux python3 sqlite3 time valgrind"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "bootstrap: installing$missing"
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y $missing
fi

conf=
[ "$san" = yes ] && conf=--enable-sanitizers
# Reconfigure when nothing is configured yet or the sanitizer choice changed.
if [ ! -f Makefile ] || [ "$(./config.status --config 2>/dev/null)" != "${conf:+'$conf'}" ]; then
	[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi
	# objects built with the other sanitizer setting must not be linked in
	[ -f Makefile ] && make clean >/dev/null 2>&1 || true
	./configure $conf
fi
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"
if [ "$check" = yes ]; then
	make -j"$jobs" check || { cat tests/*.log 2>/dev/null | grep -E 'FAIL|:[0-9]+:[EF]:' | head -50; exit 1; }
fi
if [ "$demo" = yes ]; then
	exec ./crucible demo
fi
