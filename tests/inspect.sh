#!/bin/sh
# `crucible inspect`: exit codes, summary, tensor list and JSON on the fixtures.
set -u
[ -d "$FIXTURES" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
fail=0
t() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ds="$FIXTURES/models/dsv3/v3-base"

"$CRUCIBLE" inspect >/dev/null 2>&1; t "no argument is a usage error" '[ $? -eq 2 ]'
"$CRUCIBLE" inspect --bogus "$ds" >/dev/null 2>&1; t "unknown option is a usage error" '[ $? -eq 2 ]'
"$CRUCIBLE" frobnicate >/dev/null 2>&1; t "unknown command is a usage error" '[ $? -eq 2 ]'
"$CRUCIBLE" --version | grep -q '^crucible [0-9]'; t "--version" '[ $? -eq 0 ]'

"$CRUCIBLE" inspect "$ds" >"$tmp/out" 2>"$tmp/err"; t "valid checkpoint exits 0" '[ $? -eq 0 ]'
t "architecture" 'grep -q "DeepseekV3ForCausalLM" "$tmp/out"'
t "layers" 'grep -Eq "layers +4$" "$tmp/out"'
t "experts" 'grep -Eq "experts +8$" "$tmp/out"'
t "shards" 'grep -Eq "shards +5$" "$tmp/out"'
t "F8 bytes listed" 'grep -q "F8_E4M3" "$tmp/out"'

"$CRUCIBLE" inspect --tensors "$ds" >"$tmp/out"
t "tensor list has routed experts" 'grep -Eq "^model\.layers\.1\.mlp\.experts\.7\.down_proj\.weight +routed_expert +1 +F8\+scale +\[320, 192\]" "$tmp/out"'

"$CRUCIBLE" inspect --json --tensors "$ds" >"$tmp/json"
if command -v python3 >/dev/null; then
	python3 - "$tmp/json" "$ds" <<'PY' || fail=1
import json, struct, sys, glob, os
j = json.load(open(sys.argv[1]))
# Independent count from the raw shard headers.
names = set()
for f in glob.glob(os.path.join(sys.argv[2], "*.safetensors")):
    with open(f, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        names |= {k for k in json.loads(fh.read(n)) if k != "__metadata__"}
scales = {n for n in names if n.endswith("_scale_inv")}
ok = True
def check(cond, what):
    global ok
    if not cond:
        print("FAIL: json:", what); ok = False
check(j["tensors"] == len(names) - len(scales), "tensor count")
check(j["scale_tensors"] == len(scales), "scale count")
check(j["shards"] == 5 and j["layers"] == 4 and j["experts"] == 8, "shards/layers/experts")
check(len(j["tensor_list"]) == j["tensors"], "tensor_list length")
e = [t for t in j["tensor_list"] if t["name"] == "model.layers.2.mlp.experts.3.up_proj.weight"][0]
check(e["class"] == "routed_expert" and e["layer"] == 2 and e["expert"] == 3 and e["dtype"] == "F8_E4M3"
      and e["shape"] == [192, 320] and e["block_scale"], "expert entry")
sys.exit(0 if ok else 1)
PY
fi

"$CRUCIBLE" inspect "$FIXTURES/malformed/gap.safetensors" >/dev/null 2>"$tmp/err"; t "invalid file exits 1" '[ $? -eq 1 ]'
t "error names the file" 'grep -q "gap.safetensors" "$tmp/err"'
t "error is one line" '[ $(wc -l <"$tmp/err") -eq 1 ]'
"$CRUCIBLE" inspect "$tmp/none" >/dev/null 2>&1; t "missing path exits 1" '[ $? -eq 1 ]'
exit $fail
