#!/bin/sh
# Case 8 at the library level: what a λ/δ change costs the workbench on the
# full DeepSeek-V3 layout (91,991 tensors from ../shared/tools/mkskeleton.py,
# three parents): re-resolving the plan from the edited recipe
# (cr_plan_refresh) and deciding every tensor (cr_plan_decide_all).
# bench/tune.sh measures the same change in the workbench, key to screen.
# usage: bench/plan.sh   (alone, or through bench/run; links ./libcrucible.a)
set -eu
# shellcheck source=SCRIPTDIR/common.sh
. "${BENCH_SRC:-$(cd "$(dirname "$0")" && pwd)}/common.sh"
src=$(cd "$BENCH_SRC/.." && pwd)
[ -f "$src/libcrucible.a" ] || make -C "$src" -s libcrucible.a
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
# shellcheck disable=SC2046
cc -O2 -fopenmp -I"$src/include" -I"$src" -o "$work/plan_decide" "$src/bench/plan_decide.c" "$src/libcrucible.a" \
	$(pkg-config --libs jansson yaml-0.1 sqlite3) -lm -lpthread
out=$("$work/plan_decide" "$work/aoe-0.05.yaml" "$work/aoe-0.06.yaml")
echo "$out"
# "46183 tensors, 3 parents: open+plan 3196 ms; per change: refresh 20.1 ms, decide_all 2.3 ms (with distances 2.4 ms)"
per=$(echo "$out" | sed -n 's/.*refresh \([0-9.]*\) ms, decide_all \([0-9.]*\) ms (with distances \([0-9.]*\) ms).*/\1 + \2 (\3 with distances)/p')
[ -n "$per" ] || bench_die "plan_decide printed no timings"
bench_info "plan" "library, per λ/δ change: refresh + decide_all (ms), 3 parents" "$per"
