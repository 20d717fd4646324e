#!/bin/sh
# What a λ/δ change costs the workbench on the full DeepSeek-V3 layout
# (91,991 tensors from ../shared/tools/mkskeleton.py, three parents):
# re-resolving the plan from the edited recipe and deciding every tensor.
# usage: bench/plan.sh   (run after `make`; uses ./libcrucible.a)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/crucible-plan.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
python3 "$src/../shared/tools/mkskeleton.py" "$work/v3" >/dev/null
ln -s "$work/v3" "$work/r1"
ln -s "$work/v3" "$work/r2"
for d in 0.05 0.06; do
	cat >"$work/aoe-$d.yaml" <<EOR
merge_method: aoe
base_model: $work/v3
models:
  - model: $work/v3
    parameters: {weight: [{filter: mlp.experts., value: 0.2}, {value: 0.6}]}
  - model: $work/r1
    parameters: {weight: [{class: routed_expert, value: 0.5}, {value: 0.2}]}
  - model: $work/r2
    parameters: {weight: [{filter: mlp.experts., value: 0.3}, {value: 0.2}]}
parameters: {delta: $d}
EOR
done
cc -O2 -fopenmp -I"$src/include" -I"$src" -o "$work/plan_decide" "$src/bench/plan_decide.c" "$src/libcrucible.a" \
	$(pkg-config --libs jansson yaml-0.1 sqlite3) -lm -lpthread
"$work/plan_decide" "$work/aoe-0.05.yaml" "$work/aoe-0.06.yaml"
