#!/bin/sh
# The session store's promise: merge a fixture recipe (recorded as a
# session), export the session's recipe, merge the export: the outputs are
# byte-identical (README.md, the model card, quotes each recipe's own text and
# is only checked to exist).  Then replay the recorded run and compare its
# checksums, and check that a tampered checksum is caught.
set -u
[ -d "$FIXTURES" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
command -v python3 >/dev/null || { echo "no python3"; exit 77; }
fail=0
t() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export CRUCIBLE_DB="$tmp/sessions.db"
S() { "$CRUCIBLE" sessions "$@"; }

"$CRUCIBLE" merge --help 2>&1 | grep -q -- "--no-record" || { echo "merge does not record runs in this build"; exit 77; }

# The session id of the newest session named $1.
sid_of() {
	S list --json | python3 -c 'import json,sys; print(next(s["id"] for s in json.load(sys.stdin) if s["name"] == sys.argv[1]))' "$1"
}

for case in aoe-r1t-dsv3 ties-llama slerp-mixtral; do
	recipe="$FIXTURES/expected/$case.yaml"
	out="$tmp/$case"
	"$CRUCIBLE" merge "$recipe" -o "$out.a" >"$tmp/log" 2>&1; t "$case: merge exits 0" '[ $? -eq 0 ]' || cat "$tmp/log"
	sid=$(sid_of "$case"); t "$case: the merge made a session" '[ -n "$sid" ]'
	S show "$sid" --json >"$tmp/show.json"
	python3 - "$tmp/show.json" "$out.a" <<'PY' || { echo "FAIL: $case: recorded run"; fail=1; }
import json, os, sys
j = json.load(open(sys.argv[1]))
runs = j["run_list"]
assert len(runs) == 1, runs
r = runs[0]
assert r["status"] == "done", r
assert os.path.realpath(r["output"]) == os.path.realpath(sys.argv[2]), r["output"]
assert r["bytes"] > 0 and r["tensors"] > 0, r
assert sum(r["decisions"].values()) == r["tensors"], r
PY
	S export "$sid" -o "$tmp/$case.export.yaml"; t "$case: export" '[ $? -eq 0 ]'
	"$CRUCIBLE" merge "$tmp/$case.export.yaml" -o "$out.b" --no-record >"$tmp/log" 2>&1
	t "$case: merge of the export exits 0" '[ $? -eq 0 ]' || cat "$tmp/log"
	(cd "$out.a" && ls -A | grep -v '^README.md$' | sort) >"$tmp/files.a"
	(cd "$out.b" && ls -A | grep -v '^README.md$' | sort) >"$tmp/files.b"
	t "$case: same files" 'cmp -s "$tmp/files.a" "$tmp/files.b" && [ -s "$tmp/files.a" ]'
	same=1
	while read -r f; do cmp -s "$out.a/$f" "$out.b/$f" || { echo "  $case: $f differs"; same=0; }; done <"$tmp/files.a"
	t "$case: outputs byte-identical" '[ $same -eq 1 ]'
	t "$case: both have a model card" '[ -f "$out.a/README.md" ] && [ -f "$out.b/README.md" ]'
	# the recorded run's recipe, exported and merged from another folder, gives the same bytes too
	mkdir -p "$tmp/elsewhere"
	run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_list"][0]["id"])' "$tmp/show.json")
	S export "$sid" --run "$run" -o "$tmp/elsewhere/run.yaml"; t "$case: export --run" '[ $? -eq 0 ]'
	"$CRUCIBLE" merge "$tmp/elsewhere/run.yaml" -o "$out.r" --no-record >"$tmp/log" 2>&1
	t "$case: merge of the run's recipe exits 0" '[ $? -eq 0 ]' || cat "$tmp/log"
	same=1
	while read -r f; do cmp -s "$out.a/$f" "$out.r/$f" || { echo "  $case: $f differs (run recipe)"; same=0; }; done <"$tmp/files.a"
	t "$case: run recipe reproduces the output" '[ $same -eq 1 ]'
	# the output is right, by the independent reference
	python3 "$FIXTURES/../tools/check_merge.py" "$FIXTURES/expected/$case" "$out.a" >"$tmp/check" 2>&1
	t "$case: check_merge.py passes" '[ $? -eq 0 ]' || tail -3 "$tmp/check"
	# replay: merges again and compares checksums with the recorded run
	S replay "$sid" -o "$out.c" >"$tmp/replay" 2>&1; t "$case: replay exits 0" '[ $? -eq 0 ]'
	t "$case: replay matches" 'grep -q "all [0-9]* tensor checksums match" "$tmp/replay"' || cat "$tmp/replay"
	# runs 1 (merge) and 2 (replay) in this session now
	t "$case: replay recorded" '[ "$(S list --json | python3 -c "import json,sys; print([s[\"runs\"] for s in json.load(sys.stdin) if s[\"id\"] == $sid][0])")" = 2 ]'
done

# A recorded checksum that no longer matches is reported, with the tensor's name.
if command -v sqlite3 >/dev/null; then
	sid=$(sid_of ties-llama)
	run=$(sqlite3 "$CRUCIBLE_DB" "SELECT min(id) FROM run WHERE session = $sid")
	name=$(sqlite3 "$CRUCIBLE_DB" "SELECT name FROM run_tensor WHERE run = $run ORDER BY name LIMIT 1")
	sqlite3 "$CRUCIBLE_DB" "UPDATE run_tensor SET checksum = '0000000000000000' WHERE run = $run AND name = '$name'"
	S replay "$sid" --run "$run" -o "$tmp/tampered" >"$tmp/replay" 2>&1; t "tampered: replay exits 1" '[ $? -eq 1 ]'
	t "tampered: the tensor is named" 'grep -q "differs: $name" "$tmp/replay"'
fi
exit $fail
