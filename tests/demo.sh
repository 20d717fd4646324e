#!/bin/sh
# `crucible demo` from the command line: --no-open makes the family and prints
# its paths; the result inspects as a valid checkpoint; a second run reuses it;
# usage errors exit 2 and a folder that is not a demo family is refused.
set -u
[ -x "$CRUCIBLE" ] || { echo "no crucible binary"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$(XDG_CACHE_HOME="$tmp/cache" "$CRUCIBLE" demo --no-open) || fail "demo --no-open exited $?"
printf '%s\n' "$out"
for m in base parentA parentB; do
	printf '%s\n' "$out" | grep -q "^$m  *$tmp/cache/crucible/demo/$m " || fail "no path for $m"
	"$CRUCIBLE" inspect "$tmp/cache/crucible/demo/$m" >/dev/null || fail "$m does not inspect"
done
printf '%s\n' "$out" | grep -q "generated" || fail "first run did not say it generated"
ls -d "$tmp"/cache/crucible/demo.* 2>/dev/null && fail "temporary folders left behind"

out=$(XDG_CACHE_HOME="$tmp/cache" "$CRUCIBLE" demo --no-open) || fail "second run exited $?"
printf '%s\n' "$out" | grep -q "reused" || fail "second run did not reuse the family"

# HOME is the fallback when XDG_CACHE_HOME is unset
out=$(env -u XDG_CACHE_HOME HOME="$tmp/home" "$CRUCIBLE" demo --no-open) || fail "HOME fallback exited $?"
[ -f "$tmp/home/.cache/crucible/demo/crucible-demo.json" ] || fail "no family under \$HOME/.cache"

"$CRUCIBLE" demo --bogus >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "unknown option exited $rc, want 2"
"$CRUCIBLE" demo extra >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "extra argument exited $rc, want 2"
"$CRUCIBLE" demo --help | grep -q -- "--no-open" || fail "--help does not list --no-open"

"$CRUCIBLE" demo --dir "" --no-open >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] || fail "empty --dir exited $rc, want 1"
mkdir "$tmp/mine" && echo data >"$tmp/mine/file"
err=$("$CRUCIBLE" demo --dir "$tmp/mine" --force --no-open 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] || fail "occupied folder exited $rc, want 1"
printf '%s\n' "$err" | grep -q "$tmp/mine: exists and is not a crucible demo folder" || fail "message: $err"
[ -f "$tmp/mine/file" ] || fail "the user's file was removed"
echo "ok"
