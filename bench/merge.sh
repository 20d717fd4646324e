#!/bin/sh
# Cases 4, 5, 6 and the merge half of 7: `crucible merge` against the I/O
# floor of the same work, measured in the same run (bench/README.md).
#
#   bench/merge.sh            (alone, or through bench/run)
#
# Data (bench/mkdata, made once in $BENCH_WORK/data, shared with scan.sh): a
# DeepSeek-style base and two parents of about 2 GB each in BF16 and in block
# FP8; for peak RSS against size also 1 GB and 4 GB BF16 sets, made and
# deleted in the run (BENCH_MERGE_SKIP_4G=1 leaves the 4 GB one out;
# BENCH_CLEAN=1 deletes the 2 GB sets at the end).
# Cases, each with its inputs in the page cache:
#   linear and aoe of base + p1 + p2, output on tmpfs and on disk (goal <= 1.25)
#   ties of p1 + p2 onto the base (density 0.5): a ratio, no goal (runs:
#     BENCH_MERGE_SLOW_RUNS, default 1: it takes about ten merges' time)
#   slerp of base + p1 at t = 0.5 (slerp takes exactly two models): a ratio, no goal
#   aoe of FP8 parents, output requantized FP8 on tmpfs          (goal <= 1.5)
#   linear with 1 thread vs 2; peak RSS with 1, 2 and 4 GB parents (within 10%)
# aoe runs without cached distances (as `crucible merge` does), so it
# measures each parent's distance while writing; delta is below every
# parent's distance here, so no tensor is written twice.
# The floor: `cat` of the inputs to /dev/null + `dd` (fsync) of the output's
# size to the output's place.  Merge runs: BENCH_MERGE_RUNS (3); the CPU
# time (user + sys, /usr/bin/time) is that of the run with the median wall time.
set -eu
# shellcheck source=SCRIPTDIR/common.sh
. "${BENCH_SRC:-$(cd "$(dirname "$0")" && pwd)}/common.sh"
runs=${BENCH_MERGE_RUNS:-3}
slow_runs=${BENCH_MERGE_SLOW_RUNS:-1} # ties: about 10x linear's time
scratch=$BENCH_WORK/merge-out # outputs on disk
mkdir -p "$scratch"
touch "$BENCH_TABLE"
first_row=$(($(wc -l <"$BENCH_TABLE") + 1))

recipe() { # METHOD DATA_DIR -> path of the recipe
	y=$BENCH_WORK/merge-$1.yaml
	b=$2/base p1=$2/p1 p2=$2/p2
	case $1 in
	linear) printf 'merge_method: linear\nmodels:\n  - model: %s\n    parameters: {weight: 0.4}\n  - model: %s\n    parameters: {weight: 0.3}\n  - model: %s\n    parameters: {weight: 0.3}\n' \
		"$b" "$p1" "$p2" ;;
	aoe) printf 'merge_method: aoe\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.4}\n  - model: %s\n    parameters: {weight: 0.3}\n  - model: %s\n    parameters: {weight: 0.3}\nparameters: {delta: 0.001}\n' \
		"$b" "$b" "$p1" "$p2" ;;
	ties) printf 'merge_method: ties\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.5, density: 0.5}\n  - model: %s\n    parameters: {weight: 0.5, density: 0.5}\nparameters: {normalize: true}\n' \
		"$b" "$p1" "$p2" ;;
	slerp) printf 'merge_method: slerp\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\nparameters: {t: 0.5}\n' \
		"$b" "$b" "$p1" ;;
	esac >"$y"
	echo "$y"
}

inputs() { # METHOD DATA_DIR: the files a merge reads
	case $1 in
	slerp) ls "$2"/base/*.safetensors "$2"/p1/*.safetensors ;;
	*) ls "$2"/base/*.safetensors "$2"/p1/*.safetensors "$2"/p2/*.safetensors ;;
	esac
}

# "WALL CPU": the median wall seconds of `runs` merges into DIR/out (removed
# before each run, outside the timing) and the CPU seconds (user + sys) of that run
merge_time() { # RECIPE DIR RUNS [ARGS...]
	_y=$1 _d=$2 _n=$3
	shift 3
	: >"$BENCH_WORK/.mt"
	_i=0
	while [ "$_i" -lt "$_n" ]; do
		rm -rf "$_d/out"
		sync
		_t0=$(date +%s%N)
		/usr/bin/time -f '%U %S' -o "$BENCH_WORK/.cpu" "$CRUCIBLE" merge "$_y" -o "$_d/out" "$@" >/dev/null 2>&1 ||
			{ echo "bench: merge $_y failed" >&2; return 1; }
		_t1=$(date +%s%N)
		awk -v a="$_t0" -v b="$_t1" '{ printf "%.4f %.2f\n", (b - a) / 1e9, $1 + $2 }' "$BENCH_WORK/.cpu" >>"$BENCH_WORK/.mt"
		if [ -n "${MT_FLOOR_INPUTS:-}" ]; then
			# the floor of the same work right after each merge (interleaved: the
			# hypervisor's cost of fresh tmpfs pages drifts by 2-4x within minutes)
			_b=$(du -sb "$_d/out" | cut -f1)
			rm -rf "$_d/out"
			# shellcheck disable=SC2086
			BENCH_RUNS=1 io_floor "$_d" "$_b" $MT_FLOOR_INPUTS >>"$BENCH_WORK/.mf"
		fi
		_i=$((_i + 1))
	done
	sort -n "$BENCH_WORK/.mt" | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }'
}

case_ratio() { # METHOD DATA_DIR LABEL PLACE_NAME DIR GOAL ("-": no goal) RUNS
	y=$(recipe "$1" "$2")
	# shellcheck disable=SC2046
	cat $(inputs "$1" "$2") >/dev/null
	: >"$BENCH_WORK/.mf"
	tc=$(MT_FLOOR_INPUTS=$(inputs "$1" "$2" | tr '\n' ' ') merge_time "$y" "$5" "$7") || bench_die "merge $y failed"
	t=${tc% *} cpu=${tc#* }
	f=$(sort -n "$BENCH_WORK/.mf" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	rm -f "$BENCH_WORK/.mf"
	if [ "$6" = - ]; then
		bench_ratio_info merge "$3, output on $4" "$t" "$f"
	else
		bench_ratio merge "$3, output on $4" "$t" "$f" "$6"
	fi
	bench_info merge "$3, output on $4: CPU time of that run" "${cpu}s user+sys"
}

bf=$(bench_data bf16-2g 2 bf16 2)
fp=$(bench_data fp8-2g 2 fp8 2)
for place in tmpfs disk; do
	dir=$BENCH_TMPFS
	[ "$place" = disk ] && dir=$scratch
	case_ratio linear "$bf" "linear bf16-2g (base + p1 + p2)" "$place" "$dir" 1.25 "$runs"
	case_ratio aoe "$bf" "aoe bf16-2g (base + p1 + p2)" "$place" "$dir" 1.25 "$runs"
	case_ratio ties "$bf" "ties bf16-2g (p1 + p2 onto base, density 0.5)" "$place" "$dir" - "$slow_runs"
	case_ratio slerp "$bf" "slerp bf16-2g (base + p1, t = 0.5)" "$place" "$dir" - "$runs"
done
case_ratio aoe "$fp" "aoe fp8-2g -> fp8 (base + p1 + p2)" tmpfs "$BENCH_TMPFS" 1.5 "$runs"

y=$(recipe linear "$bf")
t1=$(merge_time "$y" "$BENCH_TMPFS" "$runs" --threads 1)
t2=$(merge_time "$y" "$BENCH_TMPFS" "$runs" --threads 2)
t1=${t1% *} t2=${t2% *}
rm -rf "$BENCH_TMPFS/out"
bench_info merge "linear bf16-2g, 1 thread / 2 threads (wall)" \
	"$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%ss / %ss (%.2fx)", a, b, a / b }')"

# Peak RSS against model size: the same within 10%.
rss_of() { # DATA_DIR
	_r=$(peak_rss_kb "$CRUCIBLE" merge "$(recipe linear "$1")" -o "$scratch/out")
	rm -rf "$scratch/out"
	echo "$_r"
}
rss2=$(rss_of "$bf")
d1=$(bench_data bf16-1g 1 bf16 2)
rss1=$(rss_of "$d1")
bench_data_rm bf16-1g
rss4=
if [ "${BENCH_MERGE_SKIP_4G:-0}" = 0 ]; then
	d4=$(bench_data bf16-4g 4 bf16 2)
	rss4=$(rss_of "$d4")
	bench_data_rm bf16-4g
fi
bench_info merge "peak RSS, linear, 1 GB parents" "${rss1} kB"
bench_info merge "peak RSS, linear, 2 GB parents" "${rss2} kB"
[ -n "$rss4" ] && bench_info merge "peak RSS, linear, 4 GB parents" "${rss4} kB"
spread=$(echo "$rss1 $rss2 $rss4" | awk '{ lo = hi = $1; for (i = 2; i <= NF; i++) { if ($i < lo) lo = $i; if ($i > hi) hi = $i }
	printf "%.3f", hi / lo }')
bench_check merge "peak RSS, largest / smallest of those" "${spread}x" "<= 1.10x" \
	"$(awk -v s="$spread" 'BEGIN { print (s <= 1.10) ? 1 : 0 }')"

rm -f "$BENCH_WORK/.mt" "$BENCH_WORK/.cpu" "$BENCH_WORK"/merge-*.yaml
rm -rf "$scratch"
[ "${BENCH_CLEAN:-0}" = 0 ] || { bench_data_rm bf16-2g; bench_data_rm fp8-2g; }

if [ -z "${BENCH_RUN:-}" ]; then # alone: print this script's rows
	tail -n +"$first_row" "$BENCH_TABLE" | column -t -s "$(printf '\t')"
fi
