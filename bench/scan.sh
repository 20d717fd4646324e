#!/bin/sh
# Cases 2, 3 and the scan half of 7: the statistics scan against the I/O
# floor of the same work, measured in the same run (bench/README.md).
#
#   bench/scan.sh            (alone, or through bench/run)
#
# Data (bench/mkdata, made once in $BENCH_WORK/data, shared with merge.sh):
# a DeepSeek-style base and parent of about 2 GB each in BF16, and the same in
# block FP8 (E4M3 with 128x128 float32 scales, dequantized by the scan).
# With both files in the page cache, `crucible diff --no-cache` (so every run
# scans) is timed against the floor, `cat BASE PARENT > /dev/null`:
#   BF16 pair, 2 threads          goal <= 1.25 x floor
#   FP8 pair, 2 threads           goal <= 1.5 x floor
#   each pair with histograms (`diff --json`, the per-tensor form, computes
#   them; the table does not), CPU time of one run, 1 thread vs 2 threads.
set -eu
# shellcheck source=SCRIPTDIR/common.sh
. "${BENCH_SRC:-$(cd "$(dirname "$0")" && pwd)}/common.sh"
touch "$BENCH_TABLE"
first_row=$(($(wc -l <"$BENCH_TABLE") + 1))

scan_case() { # DATA_NAME DTYPE LABEL GOAL
	d=$(bench_data "$1" 2 "$2" 2)
	base=$d/base p1=$d/p1
	gb=$(awk -v b="$(file_bytes "$base"/*.safetensors "$p1"/*.safetensors)" 'BEGIN { printf "%.2f", b / 1e9 }')
	cat "$base"/*.safetensors "$p1"/*.safetensors >/dev/null # into the page cache
	f=$(cat_time "$base"/*.safetensors "$p1"/*.safetensors)
	t2=$(median_time "$CRUCIBLE" diff --no-cache --threads 2 "$base" "$p1")
	bench_ratio scan "$3 pair ($gb GB), 2 threads" "$t2" "$f" "$4"
	bench_info scan "$3 pair, 2 threads: CPU time of one run" "$(cpu_time "$CRUCIBLE" diff --no-cache --threads 2 "$base" "$p1")"
	h2=$(median_time "$CRUCIBLE" diff --no-cache --threads 2 --json "$base" "$p1")
	bench_info scan "$3 pair with histograms (diff --json), 2 threads" \
		"$(awk -v t="$h2" -v f="$f" 'BEGIN { printf "%ss (%.2f x floor)", t, t / f }')"
	t1=$(median_time "$CRUCIBLE" diff --no-cache --threads 1 "$base" "$p1")
	bench_info scan "$3 pair, 1 thread / 2 threads (wall)" \
		"$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%ss / %ss (%.2fx)", a, b, a / b }')"
}

scan_case bf16-2g bf16 BF16 1.25
scan_case fp8-2g fp8 "FP8+scales" 1.5

if [ -z "${BENCH_RUN:-}" ]; then # alone: print this script's rows
	tail -n +"$first_row" "$BENCH_TABLE" | column -t -s "$(printf '\t')"
fi
