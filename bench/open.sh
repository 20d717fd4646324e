#!/bin/sh
# Case 1: open the full DeepSeek-V3 layout (163 shards, 91,991 tensors, sparse
# files from ../shared/tools/mkskeleton.py) to the catalog with
# `crucible inspect` (goal < 0.5 s), and to the first workbench screen in
# tmux (goal < 1 s) once the workbench is built.
set -eu
. "${BENCH_SRC:-$(dirname "$0")}/common.sh"

tools=${SHARED_TOOLS:-$BENCH_SRC/../../shared/tools}
[ -f "$tools/mkskeleton.py" ] || tools=$BENCH_SRC/../../shared/tools
skel=$BENCH_WORK/skeleton-dsv3
if [ ! -f "$skel/.complete" ]; then
	rm -rf "$skel" "$skel.tmp"
	python3 "$tools/mkskeleton.py" "$skel.tmp" >/dev/null || bench_die "mkskeleton.py failed"
	touch "$skel.tmp/.complete"
	mv "$skel.tmp" "$skel"
fi
nshards=$(ls "$skel"/*.safetensors | wc -l)

"$CRUCIBLE" inspect "$skel" >/dev/null || bench_die "crucible inspect $skel failed"
t=$(median_time "$CRUCIBLE" inspect "$skel")
bench_goal "open" "inspect skeleton ($nshards shards, 91,991 tensors)" "$t" 0.5
# CPU time tells contention apart from work on a shared machine.
cpu=$(/usr/bin/time -f '%U %S' "$CRUCIBLE" inspect "$skel" 2>&1 >/dev/null | tail -1 |
	awk '{ printf "%.2fs user+sys", $1 + $2 }')
bench_info "open" "inspect skeleton: CPU time of one run" "$cpu"
bench_info "open" "inspect skeleton: peak RSS" "$(peak_rss_kb "$CRUCIBLE" inspect "$skel") kB"
# The floor: reading every header and the index (the tensor data is never touched).
# (one python3 process reads 8 + N header bytes of each shard; its ~20 ms
# start-up is included, so this is an upper bound of the floor)
hdr=$(median_time python3 -c 'import glob, struct, sys
for p in glob.glob(sys.argv[1] + "/*.safetensors"):
    with open(p, "rb") as f:
        f.read(struct.unpack("<Q", f.read(8))[0])
open(sys.argv[1] + "/model.safetensors.index.json", "rb").read()' "$skel")
bench_info "open" "floor: read headers + index (python3)" "${hdr}s"

# First workbench screen: time until the tree shows a tensor name in tmux.
if ! command -v tmux >/dev/null 2>&1; then
	bench_skip "open" "first workbench screen" "no tmux"
elif "$CRUCIBLE" --base "$skel" --help 2>&1 | grep -q "not built"; then
	bench_skip "open" "first workbench screen" "workbench not built yet"
else
	sock=crucible-bench-$$
	screen_time() {
		t0=$(date +%s%N)
		# --no-scan: the catalog is the first screen; a scan would read 689 GB of holes
		rm -f "$BENCH_WORK/open-bench.db"*
		tmux -L "$sock" new-session -d -x 160 -y 50 \
			"$CRUCIBLE --no-scan --db $BENCH_WORK/open-bench.db --base $skel $skel"
		i=0
		while [ $i -lt 2000 ]; do
			if tmux -L "$sock" capture-pane -p 2>/dev/null | grep -q -E 'embed|layers|lm_head'; then
				break
			fi
			sleep 0.005
			i=$((i + 1))
		done
		t1=$(date +%s%N)
		tmux -L "$sock" kill-server 2>/dev/null || true
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }'
	}
	: >"$BENCH_WORK/.screen"
	for _ in 1 2 3; do screen_time >>"$BENCH_WORK/.screen"; done
	s=$(sort -n "$BENCH_WORK/.screen" | sed -n 2p)
	bench_goal "open" "first workbench screen (tmux, median of 3)" "$s" 1.0
	rm -f "$BENCH_WORK/open-bench.db"*
fi
