#!/bin/sh
# Statistics scan against the I/O floor (issue 3, issue 7 cases 2-3).
#
#   bench/scan.sh [--clean] [--runs N]    (run from the build folder)
#
# Makes (once, cached in bench/out/) a base and a parent of about 2 GB each,
# in BF16 and in block FP8, with bench/mkdata.  Then, with the files in the
# page cache, times `crucible diff --no-cache` (1 and 2 threads) and the
# floor, `cat BASE PARENT > /dev/null`, alternating them in one run, and
# prints the medians and the ratio scan / floor.  Goals: <= 1.25 (BF16) and
# <= 1.5 (FP8) with 2 threads.  The table form of diff computes no
# histograms; hist2 is the per-tensor JSON form, which does (2 threads).
# --clean deletes bench/out/ afterwards.
set -eu

runs=3 clean=no
while [ $# -gt 0 ]; do
	case "$1" in
	--clean) clean=yes ;;
	--runs) runs=$2; shift ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "scan.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

top=$(pwd)
crucible=${CRUCIBLE:-$top/crucible}
mkdata=$top/bench/mkdata
[ -x "$crucible" ] && [ -x "$mkdata" ] || make -s crucible bench/mkdata
out=$top/bench/out
mkdir -p "$out"

# median of column $1 of the lines on stdin
median() { awk -v c="$1" '{ print $c }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "wall cpu" seconds of one command (output discarded); cpu = user + sys
timed() {
	/usr/bin/time -f "%e %U %S" -o "$out/time" "$@" > /dev/null
	awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$out/time"
}

for dt in bf16 fp8; do
	if [ ! -f "$out/$dt/p1/model.safetensors.index.json" ]; then
		echo "making $out/$dt (once)..." >&2
		rm -rf "$out/$dt"
		"$mkdata" "$out/$dt" --size-gb 2 --dtype $dt --parents 1 >&2
	fi
done

# Wall-clock ratios are the goal; the CPU-time ratio (user + sys of the scan
# over that of cat) is shown too because on a shared machine other load
# stretches wall time.
printf '%-5s %6s %8s %8s %8s %8s %7s %7s %7s %9s\n' data GB floor_s scan1_s scan2_s hist2_s ratio1 ratio2 ratio_h cpu_ratio
for dt in bf16 fp8; do
	base=$out/$dt/base p1=$out/$dt/p1
	bytes=$(cat "$base"/*.safetensors "$p1"/*.safetensors | wc -c)
	cat "$base"/*.safetensors "$p1"/*.safetensors > /dev/null # into the page cache
	: > "$out/floor" ; : > "$out/scan1" ; : > "$out/scan2" ; : > "$out/hist2"
	i=0
	while [ $i -lt "$runs" ]; do
		timed sh -c "cat '$base'/*.safetensors '$p1'/*.safetensors" >> "$out/floor"
		timed "$crucible" diff --no-cache --threads 2 "$base" "$p1" >> "$out/scan2"
		timed "$crucible" diff --no-cache --threads 1 "$base" "$p1" >> "$out/scan1"
		timed "$crucible" diff --no-cache --threads 2 --json "$base" "$p1" >> "$out/hist2"
		i=$((i + 1))
	done
	f=$(median 1 < "$out/floor") s1=$(median 1 < "$out/scan1") s2=$(median 1 < "$out/scan2")
	h2=$(median 1 < "$out/hist2")
	fc=$(median 2 < "$out/floor") s2c=$(median 2 < "$out/scan2")
	echo "$dt $bytes $f $s1 $s2 $fc $s2c $h2" |
		awk '{ printf "%-5s %6.2f %8.3f %8.3f %8.3f %8.3f %7.2f %7.2f %7.2f %9.2f\n", $1, $2 / 1e9, $3, $4, $5, $8,
			$4 / $3, $5 / $3, $8 / $3, $7 / $6 }'
done
rm -f "$out/floor" "$out/scan1" "$out/scan2" "$out/hist2" "$out/time"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1e6 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$clean" = yes ]; then
	rm -rf "$out"
fi
