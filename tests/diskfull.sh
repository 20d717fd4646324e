#!/bin/sh
# Disk full: a merge that runs out of space (a 1 MiB tmpfs, or `ulimit -f`)
# fails with one clear line naming the file, leaves no OUT, and keeps
# OUT.partial with only the shards it finished (as documented in engine.h:
# a failed run keeps OUT.partial for --resume); once there is room,
# --resume finishes it, equal to an uninterrupted run.  The file size limit
# must give EFBIG, not kill crucible with SIGXFSZ.  The tmpfs part needs root
# (CI runs as root) and is skipped otherwise; the ulimit part always runs.
set -u
[ -d "$FIXTURES" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
command -v python3 >/dev/null || { echo "python3 is needed"; exit 77; }
fail=0
t() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d)
export CRUCIBLE_DB="$tmp/sessions.db"   # runs are recorded here, not in the shared test database
mnt="$tmp/small"
trap 'umount "$mnt" 2>/dev/null; rm -rf "$tmp"' EXIT
recipe="$FIXTURES/expected/linear-llama.yaml"
args="--shard-size 200KB"
db=
"$CRUCIBLE" merge --help 2>&1 | grep -q -- '--db' && db=yes

mkdir "$tmp/ref"
"$CRUCIBLE" merge "$recipe" $args -o "$tmp/ref/out" 2>"$tmp/err"
t "uninterrupted merge" '[ -d "$tmp/ref/out" ]' || exit 1
same() { diff -r "$tmp/ref/out" "$1" >/dev/null; }
# every shard left in OUT.partial is one the manifest lists as finished
only_finished() {
	python3 - "$1" <<'PY'
import json, os, sys
d = sys.argv[1]
m = os.path.join(d, ".crucible-manifest.json")
done = {s["file"] for s in json.load(open(m))["shards"]} if os.path.exists(m) else set()
left = {f for f in os.listdir(d) if f.startswith("model-") and f.endswith(".safetensors")}
print("finished:", len(done), "shard files:", len(left))
sys.exit(0 if left <= done else 1)
PY
}

# -- file size limit: EFBIG, not SIGXFSZ --
mkdir "$tmp/fz"
(ulimit -f 100 && exec "$CRUCIBLE" merge "$recipe" $args -o "$tmp/fz/out") >/dev/null 2>"$tmp/err"
rc=$?
t "ulimit -f: exits 1 (got $rc; 153 is death by SIGXFSZ)" '[ $rc -eq 1 ]'
t "... one line naming the file and the cause ($(head -c 300 "$tmp/err"))" \
	'[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "fz/out.partial/model-.*File too large" "$tmp/err"'
t "... no OUT" '[ ! -e "$tmp/fz/out" ]'
t "... OUT.partial holds only finished shards" 'only_finished "$tmp/fz/out.partial"'
"$CRUCIBLE" merge "$recipe" $args -o "$tmp/fz/out" --resume 2>"$tmp/err"
t "... --resume without the limit finishes, equal to an uninterrupted run" '[ $? -eq 0 ] && same "$tmp/fz/out"'

# -- a full filesystem --
mkdir "$mnt"
if ! mount -t tmpfs -o size=1m tmpfs "$mnt" 2>/dev/null; then
	echo "cannot mount a tmpfs (not root?): the full-filesystem part is skipped"
	exit $fail
fi
set -- merge "$recipe" $args -o "$mnt/out"
[ -n "$db" ] && set -- "$@" --db "$tmp/s.db"
"$CRUCIBLE" "$@" >/dev/null 2>"$tmp/err"
rc=$?
t "full filesystem: exits 1 (got $rc)" '[ $rc -eq 1 ]'
t "... one line naming the file and the cause ($(head -c 300 "$tmp/err"))" \
	'[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "small/out.partial/.*No space left on device" "$tmp/err"'
t "... no OUT" '[ ! -e "$mnt/out" ]'
t "... OUT.partial holds only finished shards" 'only_finished "$mnt/out.partial"'
if [ -n "$db" ]; then
	t "... database passes integrity_check" '[ "$(sqlite3 "$tmp/s.db" "PRAGMA integrity_check")" = ok ]'
	t "... the run is recorded as failed" \
		'[ "$(sqlite3 "$tmp/s.db" "SELECT status FROM run ORDER BY id DESC LIMIT 1")" = failed ]'
fi
mount -o remount,size=16m "$mnt"
"$CRUCIBLE" merge "$recipe" $args -o "$mnt/out" --resume 2>"$tmp/err"
t "... --resume once there is room finishes, equal to an uninterrupted run" '[ $? -eq 0 ] && same "$mnt/out"'

exit $fail
