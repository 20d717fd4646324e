#!/bin/sh
# Merge benchmark (issue 4): `crucible merge` against the I/O floor of the
# same work, measured in the same run (bench/README.md).
#
#   bench/merge.sh            (alone, or through bench/run)
#
# Data (bench/mkdata, made once in $BENCH_WORK/merge, removed with
# BENCH_MERGE_CLEAN=1): a DeepSeek-style base and two parents of about 2 GB of
# BF16 each, the same at 4 GB (peak RSS against size), and 2 GB of block FP8.
# Cases, each with the parents in the page cache:
#   linear and aoe, three parents, output on tmpfs and on disk  (goal <= 1.25)
#   aoe on FP8 parents, output requantized FP8 on tmpfs         (goal <= 1.5)
#   linear with 1 thread vs 2; peak RSS at 2 GB and 4 GB per parent
# aoe runs without cached distances (as `crucible merge` does), so it
# measures each parent's distance while writing; delta is below every
# parent's distance here, so no tensor is written twice.
# The floor: `cat` of the three parents to /dev/null + `dd` (fsync) of the
# output's size to the output's place.  Merge runs: BENCH_MERGE_RUNS (3).
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"
top=$(cd "$BENCH_SRC/.." && pwd)
mkdata=$top/bench/mkdata
[ -x "$mkdata" ] || make -C "$top" -s bench/mkdata
runs=${BENCH_MERGE_RUNS:-3}
data=$BENCH_WORK/merge
mkdir -p "$data"
touch "$BENCH_TABLE"
first_row=$(($(wc -l <"$BENCH_TABLE") + 1))

make_data() { # NAME SIZE_GB DTYPE
	[ -f "$data/$1/p2/model.safetensors.index.json" ] && return 0
	echo "merge.sh: making $data/$1 (once)..." >&2
	rm -rf "${data:?}/$1"
	"$mkdata" "$data/$1" --size-gb "$2" --dtype "$3" --parents 2 >&2
}

recipe() { # METHOD NAME -> path of the recipe
	y=$data/$1-$2.yaml
	case $1 in
	linear) printf 'merge_method: linear\nmodels:\n  - model: %s\n    parameters: {weight: 0.4}\n  - model: %s\n    parameters: {weight: 0.3}\n  - model: %s\n    parameters: {weight: 0.3}\n' \
		"$data/$2/base" "$data/$2/p1" "$data/$2/p2" ;;
	aoe) printf 'merge_method: aoe\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.4}\n  - model: %s\n    parameters: {weight: 0.3}\n  - model: %s\n    parameters: {weight: 0.3}\nparameters: {delta: 0.001}\n' \
		"$data/$2/base" "$data/$2/base" "$data/$2/p1" "$data/$2/p2" ;;
	esac >"$y"
	echo "$y"
}

inputs() { ls "$data/$1"/base/*.safetensors "$data/$1"/p1/*.safetensors "$data/$1"/p2/*.safetensors; }

# median wall seconds of `runs` merges into DIR/out (removed before each run, outside the timing)
merge_time() { # RECIPE DIR [ARGS...]
	_y=$1 _d=$2
	shift 2
	: >"$data/.mt"
	_i=0
	while [ "$_i" -lt "$runs" ]; do
		rm -rf "$_d/out"
		sync
		time_once "$CRUCIBLE" merge "$_y" -o "$_d/out" "$@" >>"$data/.mt"
		_i=$((_i + 1))
	done
	sort -n "$data/.mt" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

case_ratio() { # METHOD DATA PLACE_NAME DIR GOAL
	y=$(recipe "$1" "$2")
	# shellcheck disable=SC2046
	cat $(inputs "$2") >/dev/null
	t=$(merge_time "$y" "$4")
	bytes=$(du -sb "$4/out" | cut -f1)
	cpu=$(/usr/bin/time -f "%U %S" "$CRUCIBLE" merge "$y" -o "$4/out" --force 2>&1 >/dev/null | tail -n 1 |
		awk '{ printf "%.2fs user+sys", $1 + $2 }')
	rm -rf "$4/out"
	# shellcheck disable=SC2046
	f=$(io_floor "$4" "$bytes" $(inputs "$2"))
	bench_ratio merge "$1 $2, output on $3" "$t" "$f" "$5"
	bench_info merge "$1 $2, output on $3: CPU time of one run" "$cpu"
}

make_data bf16-2g 2 bf16
make_data fp8-2g 2 fp8
case_ratio linear bf16-2g tmpfs "$BENCH_TMPFS" 1.25
case_ratio linear bf16-2g disk "$data" 1.25
case_ratio aoe bf16-2g tmpfs "$BENCH_TMPFS" 1.25
case_ratio aoe bf16-2g disk "$data" 1.25
case_ratio aoe fp8-2g tmpfs "$BENCH_TMPFS" 1.5

y=$(recipe linear bf16-2g)
t1=$(merge_time "$y" "$BENCH_TMPFS" --threads 1)
t2=$(merge_time "$y" "$BENCH_TMPFS" --threads 2)
rm -rf "$BENCH_TMPFS/out"
bench_info merge "linear bf16-2g, 1 thread / 2 threads (wall)" "${t1}s / ${t2}s"

rss2=$(peak_rss_kb "$CRUCIBLE" merge "$y" -o "$data/out")
rm -rf "$data/out"
bench_info merge "peak RSS, linear, 2 GB parents" "${rss2} kB"
if [ "${BENCH_MERGE_SKIP_4G:-0}" = 0 ]; then
	rm -rf "${data:?}/bf16-2g"
	make_data bf16-4g 4 bf16
	y=$(recipe linear bf16-4g)
	rss4=$(peak_rss_kb "$CRUCIBLE" merge "$y" -o "$data/out")
	rm -rf "$data/out"
	bench_info merge "peak RSS, linear, 4 GB parents" "${rss4} kB"
fi
rm -f "$data/.mt"
[ "${BENCH_MERGE_CLEAN:-0}" = 0 ] || rm -rf "$data"

if [ -z "${BENCH_RUN:-}" ]; then # alone: print this script's rows
	tail -n +"$first_row" "$BENCH_TABLE" | column -t -s "$(printf '\t')"
fi
