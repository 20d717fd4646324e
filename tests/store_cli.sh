#!/bin/sh
# `crucible sessions`: create from a recipe, change, undo, show, export, diff,
# rm; exit codes; and two processes writing one database at once.
set -u
fail=0
t() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export CRUCIBLE_DB="$tmp/db/sessions.db"
S() { "$CRUCIBLE" sessions "$@"; }

S >/dev/null 2>&1; t "no command is a usage error" '[ $? -eq 2 ]'
S frob >/dev/null 2>&1; t "unknown command is a usage error" '[ $? -eq 2 ]'
S list --bogus >/dev/null 2>&1; t "unknown option is a usage error" '[ $? -eq 2 ]'
S --help | grep -q "export ID"; t "--help lists export" '[ $? -eq 0 ]'
S show 42 >/dev/null 2>"$tmp/err"; t "missing session fails" '[ $? -eq 1 ]'
t "missing session is named" 'grep -q "no session .42." "$tmp/err"'
t "default database honours CRUCIBLE_DB" '[ -f "$CRUCIBLE_DB" ]'

# A session from a recipe (needs the fixtures' recipe only for its text).
r="$tmp/r.yaml"
cat >"$r" <<'Y'
merge_method: aoe
base_model: base
models:
  - model: base
    parameters:
      weight:
        - filter: "mlp.experts."
          value: 0.0
        - value: 1.0
  - model: r1
    parameters:
      weight:
        - class: routed_expert
          value: [0.5, 1.0]
        - value: 0
parameters:
  delta: 0.05
out_dtype: bfloat16
Y
mkdir "$tmp/base" "$tmp/r1"
id=$(S new --recipe "$r"); t "new --recipe prints the id" '[ "$id" = 1 ]'
S list >"$tmp/list"
t "list shows name, base, parents" 'grep -Eq "^1 .* r +base base +parents base,r1 +runs 0 +-" "$tmp/list"'
S export 1 >"$tmp/e1.yaml"; t "export exits 0" '[ $? -eq 0 ]'
t "export has absolute base" 'grep -q "base_model: \"$tmp/base\"" "$tmp/e1.yaml"'
t "export keeps the gradient" 'grep -q "value: \[0.5, 1\]" "$tmp/e1.yaml"'
t "export keeps the class entry" 'grep -q "class: \"routed_expert\"" "$tmp/e1.yaml"'
# The export is itself a recipe: importing it gives a session with no differences.
id2=$(S new --recipe "$tmp/e1.yaml" --name again)
S diff 1 again >"$tmp/d"
t "export re-imports to the same state" 'grep -q "no differences" "$tmp/d"'

S set 1 --model 1 --scope layers:1-2 weight -0.25; t "set a negative value" '[ $? -eq 0 ]'
S set 1 delta 0.1
S set 1 delta banana >/dev/null 2>"$tmp/err"; t "bad value fails" '[ $? -eq 1 ]'
t "bad value is named" 'grep -q "delta.*banana" "$tmp/err"'
S set 1 --model 7 weight 1 >/dev/null 2>&1; t "model out of range fails" '[ $? -eq 1 ]'
S diff 1 again >"$tmp/d"
t "diff shows the layer-range change" 'grep -q "weight\[1:r1\] @ layers:1-2: -0.25 -> (unset)" "$tmp/d"'
t "diff shows delta" 'grep -q "delta: 0.1 -> 0.05" "$tmp/d"'
S undo 1; S undo 1
S diff 1 again >"$tmp/d"
t "two undos restore the state" 'grep -q "no differences" "$tmp/d"'
S redo 1
S show 1 >"$tmp/show"
t "show has the timeline with undo and redo" 'grep -q "undo delta: 0.1 -> 0.05" "$tmp/show" && grep -q "redo weight" "$tmp/show"'
S show 1 --json >"$tmp/show.json"
if command -v python3 >/dev/null; then
	python3 - "$tmp/show.json" <<'PY' || { echo "FAIL: show --json"; fail=1; }
import json, sys
j = json.load(open(sys.argv[1]))
kinds = [e["kind"] for e in j["event_list"]]
assert kinds.count("undo") == 2 and kinds.count("redo") == 1, kinds
assert [e["seq"] for e in j["event_list"]] == list(range(1, len(kinds) + 1))
state = {(s["scope"], s["model"], s["key"]): s["value"] for s in j["state"]}
assert state[("layers:1-2", 1, "weight")] == "-0.25", state
assert state[("*", None, "delta")] == "0.05", state
assert j["runs"] == 0 and j["run_list"] == []
PY
fi
S list --json >"$tmp/list.json"
t "list --json is an array of 2" 'python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert len(j)==2 and j[0][\"name\"]==\"again\"" "$tmp/list.json"'

fork=$(S fork 1 --name forked); t "fork prints an id" '[ "$fork" = 3 ]'
S diff 1 forked | grep -q "no differences"; t "a fork starts equal" '[ $? -eq 0 ]'
S rename forked renamed && S show renamed | grep -q "forked from session 1"; t "rename, forked from" '[ $? -eq 0 ]'
S rm renamed; t "rm exits 0" '[ $? -eq 0 ]'
S show renamed >/dev/null 2>&1; t "removed session is gone" '[ $? -eq 1 ]'
S export 1 --run 99 >/dev/null 2>&1; t "export of a missing run fails" '[ $? -eq 1 ]'

# Two processes change one session at the same time: nothing is lost.
n=40
w() { i=1; while [ $i -le $n ]; do S set 1 --scope "filter:$1." weight $i --model 0 || echo "writer $1 failed"; i=$((i + 1)); done; }
before=$(S show 1 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["event_list"]))')
w a >"$tmp/wa" 2>&1 & pa=$!
w b >"$tmp/wb" 2>&1 & pb=$!
wait $pa; wait $pb
t "writers reported no error" '[ ! -s "$tmp/wa" ] && [ ! -s "$tmp/wb" ]'
S show 1 --json >"$tmp/after.json"
python3 - "$tmp/after.json" "$before" "$n" <<'PY' || { echo "FAIL: concurrent events"; fail=1; }
import json, sys
j = json.load(open(sys.argv[1])); before = int(sys.argv[2]); n = int(sys.argv[3])
ev = j["event_list"]
assert len(ev) == before + 2 * n, (len(ev), before, n)
assert [e["seq"] for e in ev] == list(range(1, len(ev) + 1))
for w in "ab":
    vals = [int(e["new"]) for e in ev if e["scope"] == "filter:%s." % w]
    assert vals == list(range(1, n + 1)), (w, vals)
PY
if command -v sqlite3 >/dev/null; then
	t "integrity_check ok" '[ "$(sqlite3 "$CRUCIBLE_DB" "PRAGMA integrity_check")" = ok ]'
	t "WAL mode" '[ "$(sqlite3 "$CRUCIBLE_DB" "PRAGMA journal_mode")" = wal ]'
	t "schema version 2" '[ "$(sqlite3 "$CRUCIBLE_DB" "PRAGMA user_version")" = 2 ]'
fi
exit $fail
