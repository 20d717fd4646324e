#!/bin/sh
# Merge benchmark: three Llama-shaped parents of MB megabytes of BF16 each
# (bench/mkparents.c; the stats branch's bench/mkdata was not on main yet),
# merged with `linear` and `aoe`, output on tmpfs (/dev/shm) and on disk.
# Reports merge time / I/O floor, where the floor is `cat` of the three
# parents to /dev/null plus a `dd` of the output's size to the same place
# (with conv=fsync, since the merge fsyncs its shards too; the plain dd is
# shown as well), and the peak RSS (/usr/bin/time -v) at MB and 2*MB.
# usage: bench/merge.sh [MB]   (default 2000; env CRUCIBLE, BENCH_DISK=/tmp)
# Needs about 9*MB of disk and removes everything it made.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
mb=${1:-2000}
disk=${BENCH_DISK:-/tmp}
work=$(mktemp -d "$disk/crucible-bench.XXXXXX")
shm=$(mktemp -d /dev/shm/crucible-bench.XXXXXX)
trap 'rm -rf "$work" "$shm"' EXIT INT TERM
cp "${CRUCIBLE:-$src/crucible}" "$work/crucible"
cc -O2 -o "$work/mkparents" "$src/bench/mkparents.c"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }

mkdata() { # SIZE TAG
	"$work/mkparents" "$work/base$2" "$1" 1
	"$work/mkparents" "$work/p1$2" "$1" 1 2
	"$work/mkparents" "$work/p2$2" "$1" 1 3
	cat "$work/base$2/model.safetensors" "$work/p1$2/model.safetensors" "$work/p2$2/model.safetensors" >/dev/null
}

recipe() { # METHOD TAG
	case $1 in
	linear) printf 'merge_method: linear\nmodels:\n  - model: %s\n    parameters: {weight: 0.4}\n  - model: %s\n    parameters: {weight: 0.3}\n  - model: %s\n    parameters: {weight: 0.3}\n' \
		"$work/base$2" "$work/p1$2" "$work/p2$2" ;;
	aoe) printf 'merge_method: aoe\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 0.4}\n  - model: %s\n    parameters: {weight: 0.3}\n  - model: %s\n    parameters: {weight: 0.3}\nparameters: {delta: 0.001}\n' \
		"$work/base$2" "$work/base$2" "$work/p1$2" "$work/p2$2" ;;
	esac >"$work/$1$2.yaml"
}

floor() { # DEST TAG BYTES -> "cat dd_fsync dd_plain" seconds
	t0=$(now)
	cat "$work/base$2/model.safetensors" "$work/p1$2/model.safetensors" "$work/p2$2/model.safetensors" >/dev/null
	t1=$(now)
	dd if=/dev/zero of="$1/floor" bs=4M count=$(($3 / 4194304 + 1)) conv=fsync 2>/dev/null
	t2=$(now)
	rm -f "$1/floor"
	dd if=/dev/zero of="$1/floor" bs=4M count=$(($3 / 4194304 + 1)) 2>/dev/null
	t3=$(now)
	rm -f "$1/floor"
	sync
	echo "$(secs "$t0" "$t1") $(secs "$t1" "$t2") $(secs "$t2" "$t3")"
}

run() { # METHOD DEST TAG PLACE
	rm -rf "$2/out"
	sync
	t0=$(now)
	/usr/bin/time -v "$work/crucible" merge "$work/$1$3.yaml" -o "$2/out" 2>"$work/time.log" >/dev/null
	t1=$(now)
	rss=$(awk '/Maximum resident/ {print $NF}' "$work/time.log")
	bytes=$(du -sb "$2/out" | cut -f1)
	rm -rf "$2/out"
	sync
	set -- "$@" $(floor "$2" "$3" "$bytes")
	m=$(secs "$t0" "$t1")
	ff=$(echo "$5 + $6" | bc -l)
	fp=$(echo "$5 + $7" | bc -l)
	printf '%-7s %-6s %5d MB/parent  merge %6.2f s  floor %6.2f s (cat %.2f + dd fsync %.2f)  ratio %s  | floor without fsync %6.2f s: ratio %s  | peak RSS %d MB\n' \
		"$1" "$4" "$mb" "$m" "$ff" "$5" "$6" "$(ratio "$m" "$ff")" "$fp" "$(ratio "$m" "$fp")" $((rss / 1024))
}

mkdata "$mb" ""
recipe linear ""
recipe aoe ""
for method in linear aoe; do
	run "$method" "$shm" "" tmpfs
	run "$method" "$work" "" disk
done
if [ "${BENCH_SKIP_LARGE:-0}" = 0 ]; then
	rm -rf "$work/base" "$work/p1" "$work/p2"
	mb=$((mb * 2))
	mkdata "$mb" 2
	recipe linear 2
	run linear "$work" 2 disk
fi
