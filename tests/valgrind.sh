#!/bin/sh
# `make check-valgrind`: run Check programs under memcheck, $VALGRIND_JOBS
# (default 2) at a time; leaks are errors.  Check's fork mode is kept: every
# test runs in a child that valgrind also checks at its exit (an error makes
# the child exit 1, which Check reports as a failed test), and tests that fork
# before using OpenMP stay valid.  Timeouts are stretched for valgrind.
#   valgrind.sh SUPPRESSIONS PROGRAM...
set -u
if [ "${1:-}" = --one ]; then
	supp=$2 t=$3
	if CK_TIMEOUT_MULTIPLIER=30 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,possible \
		--error-exitcode=1 --suppressions="$supp" "./$t" >"$t.vg.log" 2>&1; then
		echo "PASS: $t (valgrind)"
	else
		echo "FAIL: $t (valgrind), see $t.vg.log:"
		tail -n 40 "$t.vg.log"
		echo "$t" >>"$VG_FAILED"
	fi
	exit 0
fi
command -v valgrind >/dev/null || { echo "check-valgrind: valgrind is not installed"; exit 1; }
supp=$1; shift
VG_FAILED=$(mktemp); export VG_FAILED
printf '%s\n' "$@" | xargs -P "${VALGRIND_JOBS:-2}" -n 1 sh "$0" --one "$supp"
failed=$(cat "$VG_FAILED"); rm -f "$VG_FAILED"
[ -z "$failed" ] || { echo "valgrind found errors in:" $failed; exit 1; }
