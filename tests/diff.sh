#!/bin/sh
# `crucible diff` end to end on the fixtures: exit codes, the three output
# formats, --by, --filter, --sort, the cache, and warnings on stderr.
set -u
: "${CRUCIBLE:?}" "${FIXTURES:?}"
[ -d "$FIXTURES/models/dsv3" ] || exit 77
M=$FIXTURES/models
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME="$T/cache"
export CRUCIBLE_DB="$T/sessions.db" # the default statistics cache
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# usage and errors
"$CRUCIBLE" diff --help > "$T/out" 2>&1 || bad "--help exit $?"
grep -q '^usage: crucible diff' "$T/out" || bad "--help text"
"$CRUCIBLE" diff "$M/dsv3/v3-base" > /dev/null 2> "$T/err"; [ $? -eq 2 ] || bad "one checkpoint: want exit 2"
"$CRUCIBLE" diff --by nonsense "$M/dsv3/v3-base" "$M/dsv3/r1" > /dev/null 2> "$T/err"; [ $? -eq 2 ] || bad "--by nonsense: want exit 2"
grep -q "nonsense" "$T/err" || bad "--by error names the value"
"$CRUCIBLE" diff --filter class:nope "$M/dsv3/v3-base" "$M/dsv3/r1" > /dev/null 2>&1; [ $? -eq 2 ] || bad "bad class: want exit 2"
"$CRUCIBLE" diff "$M/dsv3/v3-base" "$T/no-such" > /dev/null 2> "$T/err"; [ $? -eq 1 ] || bad "missing parent: want exit 1"
grep -q "$T/no-such" "$T/err" || bad "error names the missing path"

# table: one row per tensor and parent; nothing on stderr when it is not a TTY
"$CRUCIBLE" diff "$M/dsv3/v3-base" "$M/dsv3/r1" "$M/dsv3/r1-0528" > "$T/tab" 2> "$T/err" || bad "table exit $?"
[ -s "$T/err" ] && bad "stderr not empty: $(head -3 "$T/err")"
grep -Eq '^lm_head\.weight +head +- +1 identical +0\.000000 +1\.000000' "$T/tab" || bad "lm_head row"
n=$(grep -c 'model\.layers\.' "$T/tab")
tensors=$("$CRUCIBLE" inspect --json "$M/dsv3/v3-base" | sed -n 's/^ *"tensors": \([0-9]*\).*/\1/p')
[ "$n" -eq $(( (tensors - 3) * 2 )) ] || bad "table has $n layer rows, want $(( (tensors - 3) * 2 ))"

# CSV: header plus tensors x parents rows; filter by class keeps that class only
"$CRUCIBLE" diff --csv --filter class:routed_expert "$M/dsv3/v3-base" "$M/dsv3/r1" > "$T/csv" || bad "csv exit $?"
head -1 "$T/csv" | grep -q '^tensor,class,layer,parent,status,REL' || bad "csv header"
[ "$(tail -n +2 "$T/csv" | cut -d, -f2 | sort -u)" = routed_expert ] || bad "class filter"
rows=$(tail -n +2 "$T/csv" | wc -l)
[ "$rows" -eq 96 ] || bad "routed experts: $rows rows, want 96"
# every routed expert of r1 moved by about 18%
awk -F, 'NR > 1 && ($6 < 0.17 || $6 > 0.20) { print "rel " $6 " for " $1; bad = 1 } END { exit bad }' "$T/csv" || bad "routed expert rel"

# --sort rel: non-increasing rel
"$CRUCIBLE" diff --csv --sort rel "$M/mixtral/base" "$M/mixtral/code" > "$T/sorted" || bad "sort exit $?"
tail -n +2 "$T/sorted" | cut -d, -f6 | awk 'NR > 1 && $1 > prev { bad = 1 } { prev = $1 } END { exit bad }' || bad "not sorted by rel"
head -2 "$T/sorted" | tail -1 | grep -Eq 'experts\.(1|3)\.' || bad "largest rel is not expert 1 or 3"
# --filter SUBSTRING
"$CRUCIBLE" diff --csv --filter experts.3. "$M/mixtral/base" "$M/mixtral/code" > "$T/f" || bad "filter exit $?"
[ "$(tail -n +2 "$T/f" | grep -vc 'experts\.3\.')" -eq 0 ] && [ "$(tail -n +2 "$T/f" | wc -l)" -gt 0 ] || bad "substring filter"

# --by class and --by layer
"$CRUCIBLE" diff --by class "$M/dsv3/v3-base" "$M/dsv3/r1" > "$T/cls" || bad "--by class exit $?"
grep -Eq '^ +all routed_expert +1 +96 +0 +0\.18' "$T/cls" || bad "--by class routed_expert row"
grep -Eq '^ +all embed +1 +1 +1 +0\.000000' "$T/cls" || bad "--by class embed identical"
"$CRUCIBLE" diff --by layer --csv "$M/dsv3/v3-base" "$M/dsv3/r1" > "$T/lay" || bad "--by layer exit $?"
grep -q '^1,routed_expert,1,24,0,0\.18' "$T/lay" || bad "--by layer: layer 1 routed experts"

# JSON: valid, with histograms whose counts add up; the second run is cached
if command -v python3 > /dev/null; then
	"$CRUCIBLE" diff --json --cache "$T/c2" "$M/mixtral/base" "$M/mixtral/code" > "$T/j1" || bad "json exit $?"
	"$CRUCIBLE" diff --json --cache "$T/c2" "$M/mixtral/base" "$M/mixtral/code" > "$T/j2" || bad "json exit $?"
	python3 - "$T/j1" "$T/j2" <<'EOF' || bad "json checks"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["by"] == "tensor" and len(a["parents"]) == 1
for t in a["tensors"]:
    p = t["parents"][0]
    changed = ".experts.1." in t["name"] or ".experts.3." in t["name"]
    assert p["status"] == ("ok" if changed else "identical"), t["name"]
    h = p["histogram"]
    assert sum(h["counts"]) == p["finite"], t["name"]
    assert len(h["edges"]) == len(h["counts"]) + 1
    assert h["edges"][0] <= -p["max_abs"] and h["edges"][-1] >= p["max_abs"]
    assert not p["cached"]
for t, u in zip(a["tensors"], b["tensors"]):
    assert u["parents"][0]["cached"], u["name"]
    assert t["parents"][0]["rel"] == u["parents"][0]["rel"]
EOF
	"$CRUCIBLE" diff --json --no-cache "$M/mixtral/base" "$M/mixtral/code" | grep -q '"cached": true' && bad "--no-cache used the cache"
fi

# parents whose tensor sets differ: warnings name the tensors, exit 0
"$CRUCIBLE" diff "$M/llama/base" "$M/mixtral/base" > "$T/out" 2> "$T/err" || bad "mismatched families exit $?"
grep -q "is missing" "$T/err" || bad "no missing-tensor warning"
grep -q "is not in the base" "$T/err" || bad "no extra-tensor warning"
grep -q "shape .* differs" "$T/err" || bad "no shape warning"

exit $fail
