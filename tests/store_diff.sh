#!/bin/sh
# `crucible diff` caches its statistics in the session database: a second
# diff of unchanged files is answered from it with the same numbers, and a
# changed file's tensors are computed again.
set -u
[ -d "$FIXTURES/models/dsv3" ] || exit 77
command -v python3 >/dev/null || exit 77
fail=0
t() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
M=$FIXTURES/models
cp -r "$M/dsv3/r1" "$tmp/r1"
db="$tmp/s.db"
D() { "$CRUCIBLE" diff --json --db "$db" "$M/dsv3/v3-base" "$tmp/r1" "$M/dsv3/r1-0528"; }

D >"$tmp/1.json"; t "first diff exits 0" '[ $? -eq 0 ]'
D >"$tmp/2.json"; t "second diff exits 0" '[ $? -eq 0 ]'
touch -d "2001-02-03 04:05:06" "$tmp/r1/model-000003-of-000005.safetensors"
D >"$tmp/3.json"; t "diff after a change exits 0" '[ $? -eq 0 ]'
python3 - "$tmp/1.json" "$tmp/2.json" "$tmp/3.json" <<'PY' || fail=1
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
def pairs(j):
    for t in j["tensors"]:
        for k, p in enumerate(t["parents"]):
            yield t["name"], k, p
def strip(p):
    return {k: v for k, v in p.items() if k != "cached"}
first = list(pairs(runs[0])); second = list(pairs(runs[1])); third = list(pairs(runs[2]))
assert len(first) == len(second) == len(third) > 0
ok = True
if any(p["cached"] for _, _, p in first):
    print("FAIL: the first diff found cached rows in a new database"); ok = False
if not all(p["cached"] for _, _, p in second if p["status"] in ("ok", "identical")):
    print("FAIL: the second diff computed something again"); ok = False
for (n, k, a), (_, _, b), (_, _, c) in zip(first, second, third):
    if strip(a) != strip(b) or strip(a) != strip(c):
        print("FAIL: %s parent %d: cached numbers differ" % (n, k)); ok = False; break
# only tensors whose bytes (weight or FP8 scale) of r1 sit in the touched shard are computed again
idx = json.load(open(sys.argv[1].replace("1.json", "r1/model.safetensors.index.json")))["weight_map"]
shard = "model-000003-of-000005.safetensors"
touched = {n for n in idx if idx[n] == shard or idx.get(n + "_scale_inv") == shard}
recomputed = {n for n, k, p in third if not p["cached"] and p["status"] in ("ok", "identical")}
if not recomputed:
    print("FAIL: nothing was computed again after touching a shard of r1"); ok = False
if recomputed - touched:
    print("FAIL: computed again without a change: %s" % sorted(recomputed - touched)[:5]); ok = False
if not any(p["cached"] for _, _, p in third):
    print("FAIL: everything was computed again"); ok = False
sys.exit(0 if ok else 1)
PY
if command -v sqlite3 >/dev/null; then
	t "statistics are rows in the database" '[ "$(sqlite3 "$db" "SELECT count(*) > 100 FROM tensor_stats")" = 1 ]'
	t "one identity per file" '[ "$(sqlite3 "$db" "SELECT count(*) FROM file WHERE path LIKE \"%/r1/model-000003-of-000005.safetensors\"")" = 1 ]'
fi
exit $fail
