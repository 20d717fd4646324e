#!/bin/sh
# Case 8: the live-tuning latency of the workbench on the DeepSeek-V3 layout
# with cached statistics: the time from a λ change to a redrawn decision
# column (goal < 50 ms).
#
#   bench/tune.sh            (alone, or through bench/run)
#
# Data (made once in $BENCH_WORK): the skeleton of open.sh (mkskeleton.py:
# 163 shards, 91,991 tensors, sparse) as the base and two more skeletons as
# parents (header-only too: 20 MB each on disk), and a session database whose
# statistics cache bench/fillstats has filled for base + parents without
# reading any tensor data (the files are 689 GB of holes each).
#
# The workbench runs in tmux with CRUCIBLE_TUI_TIMING=1 on a fresh copy of
# that database; the scan finds every tensor cached.  Then, in the merge
# panel, λ of the first parent goes 0 -> 0.05 -> 0 ... BENCH_TUNE_CHANGES
# times on all tensors, then as many times on class:routed_expert.  After
# each change the status line shows
#   [event X + recipe X + plan X + decide X ms; key to screen X ms]
# measured inside crucible from the key to the end of the redraw.  The script
# also times each change from outside (send-keys until capture-pane shows the
# new value and the layer's new decision), which adds tmux's own latency.
set -eu
# shellcheck source=SCRIPTDIR/common.sh
. "${BENCH_SRC:-$(cd "$(dirname "$0")" && pwd)}/common.sh"
top=$(cd "$BENCH_SRC/.." && pwd)
changes=${BENCH_TUNE_CHANGES:-20}
changes=$((changes + changes % 2)) # even: λ ends where it started
touch "$BENCH_TABLE"
first_row=$(($(wc -l <"$BENCH_TABLE") + 1))

command -v tmux >/dev/null 2>&1 || { bench_skip "tune" "λ change to redrawn decision column" "no tmux"; exit 0; }
fill=$top/bench/fillstats
make -C "$top" -s bench/fillstats >&2 || bench_die "cannot build bench/fillstats"

tools=${SHARED_TOOLS:-$BENCH_SRC/../../shared/tools}
[ -f "$tools/mkskeleton.py" ] || tools=$BENCH_SRC/../../shared/tools
skeleton() { # DIR: make (once) a header-only DeepSeek-V3 checkpoint
	[ -f "$1/.complete" ] && return 0
	rm -rf "$1" "$1.tmp"
	python3 "$tools/mkskeleton.py" "$1.tmp" >/dev/null || bench_die "mkskeleton.py failed"
	touch "$1.tmp/.complete"
	mv "$1.tmp" "$1"
}
skel=$BENCH_WORK/skeleton-dsv3 # shared with open.sh
p1=$BENCH_WORK/tune-p1
p2=$BENCH_WORK/tune-p2
skeleton "$skel"
skeleton "$p1"
skeleton "$p2"

# The filled database, made again when a checkpoint is newer (its identity changed).
stats_db=$BENCH_WORK/tune-stats.db
if [ ! -f "$stats_db" ] || [ -n "$(find "$skel/.complete" "$p1/.complete" "$p2/.complete" -newer "$stats_db")" ]; then
	rm -f "$stats_db" "$stats_db-wal" "$stats_db-shm" "$stats_db.tmp"*
	"$fill" "$stats_db.tmp" "$skel" "$p1" "$p2" >&2 || bench_die "fillstats failed"
	mv "$stats_db.tmp" "$stats_db"
fi
db=$BENCH_WORK/tune-run.db
rm -f "$db" "$db-wal" "$db-shm"
cp "$stats_db" "$db"

sock=crucible-bench-tune-$$
log=$BENCH_WORK/tune-changes.txt
trap 'tmux -L "$sock" kill-server 2>/dev/null || true' EXIT INT TERM
screen() { tmux -L "$sock" capture-pane -p -t t; }
# wait_for REGEX SECONDS: poll the screen (no sleep between polls) until a line matches
wait_for() {
	_end=$(($(date +%s) + $2))
	while ! screen | grep -qE -- "$1"; do
		if [ "$(date +%s)" -ge "$_end" ]; then
			echo "tune.sh: timed out waiting for /$1/; the screen:" >&2
			screen >&2
			return 1
		fi
	done
}

tmux -L "$sock" -f /dev/null new-session -d -s t -x 160 -y 50 \
	"env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=tmux-256color CRUCIBLE_TUI_TIMING=1 '$CRUCIBLE' --db '$db' --base '$skel' '$p1' '$p2' 2>'$BENCH_WORK/tune-stderr'; echo '[crucible exited]'; sleep 600"
# The scan must find everything in the cache: a miss would start reading 689 GB of holes.
t0=$(date +%s%N)
wait_for 'statistics ready for [0-9]+ tensors|crucible exited' "${BENCH_TUNE_TIMEOUT:-120}" ||
	bench_die "the workbench did not find the cached statistics"
t1=$(date +%s%N)
screen | grep -q 'crucible exited' && bench_die "the workbench exited: $(cat "$BENCH_WORK/tune-stderr")"
# The rel columns must hold numbers (… is an unknown rel) and no decision may wait for one.
screen | grep -E '^[▸▾] (layer|outside)' >"$BENCH_WORK/tune-rows.txt"
if grep -qE '…|pending' "$BENCH_WORK/tune-rows.txt" || ! grep -qE '^▸ layer 3 .* 0\.[0-9]{4} .* 0\.[0-9]{4} ' "$BENCH_WORK/tune-rows.txt"; then
	screen >&2
	bench_die "statistics missing or pending after the scan (see the screen above)"
fi
rm -f "$BENCH_WORK/tune-rows.txt"
bench_info "tune" "open + cached statistics of base + 2 parents (tmux)" \
	"$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2fs", (b - a) / 1e9 }')"

# change KEY VALUE SCOPE_TEXT DECISION: one λ change; appends to $log
#   "outside_ms event recipe plan decide key_to_screen" (ms)
change() {
	_t0=$(date +%s%N)
	tmux -L "$sock" send-keys -t t "$1"
	# The status line names the new value, and the layer-3 row shows its new decision.
	wait_for "^weight tune-p1 = $2 on $3  \[event " 10 || return 1
	wait_for "^▸ layer 3 .* $4 *\$" 10 || return 1
	_t1=$(date +%s%N)
	screen | sed -n "s/^weight tune-p1 = $2 on $3  \[event \([0-9.]*\) + recipe \([0-9.]*\) + plan \([0-9.]*\) + decide \([0-9.]*\) ms; key to screen \([0-9.]*\) ms\].*/\1 \2 \3 \4 \5/p" |
		awk -v a="$_t0" -v b="$_t1" -v s="$3" '{ printf "%s %.2f %s\n", s, (b - a) / 1e6, $0 }' >>"$log"
}

# series SCOPE_TEXT DECISION_AT_0.05: `changes` changes of λ tune-p1 on the current scope
series() {
	_i=0
	while [ "$_i" -lt "$changes" ]; do
		if [ $((_i % 2)) = 0 ]; then
			change Right 0.05 "$1" "$2" || return 1
		else
			change Left 0 "$1" base || return 1
		fi
		_i=$((_i + 1))
	done
}

: >"$log"
# The panel's cursor starts on λ of the base; the next row is λ tune-p1.
tmux -L "$sock" send-keys -t t Tab Down
wait_for '^λ tune-p1 ' 10 || bench_die "no λ row for tune-p1 in the merge panel"
series "all tensors" mixed || bench_die "a λ change on all tensors did not show"
# Scope: the routed-expert class (typed on the scope row, two rows up).
tmux -L "$sock" send-keys -t t Up Up Enter
wait_for 'scope \(all, class:NAME' 10 || bench_die "no scope prompt"
tmux -L "$sock" send-keys -t t -l "class:routed_expert"
tmux -L "$sock" send-keys -t t Enter
wait_for '^scope +◂ class:routed_expert ▸' 10 || bench_die "the scope did not change"
tmux -L "$sock" send-keys -t t Down Down
series "class:routed_expert" mixed || bench_die "a λ change on class:routed_expert did not show"
tmux -L "$sock" send-keys -t t q
tmux -L "$sock" kill-server 2>/dev/null || true

n=$(wc -l <"$log")
[ "$n" -eq $((2 * changes)) ] || bench_die "parsed $n of $((2 * changes)) timing lines (see $log)"
# col N of the log (scope text has a space in "all tensors": count fields from the end)
stat_ms() { # FIELD_FROM_END WHICH(median|max) [SCOPE]
	awk -v s="${3:-}" -v f="$1" '$0 ~ "^" s { print $(NF - f) }' "$log" | sort -g | awk -v w="$2" '{ v[NR] = $1 }
		END { if (w == "max") print v[NR]; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
sec() { awk -v m="$1" 'BEGIN { printf "%.4f", m / 1000 }'; }
bench_goal "tune" "λ change to redrawn decision column, median of $n (in crucible: key to screen)" "$(sec "$(stat_ms 0 median)")" 0.050
bench_goal "tune" "λ change to redrawn decision column, max of $n" "$(sec "$(stat_ms 0 max)")" 0.050
for sc in "all tensors" "class:routed_expert"; do
	bench_info "tune" "median on $sc: event + recipe + plan + decide; key to screen (ms)" \
		"$(stat_ms 4 median "$sc") + $(stat_ms 3 median "$sc") + $(stat_ms 2 median "$sc") + $(stat_ms 1 median "$sc"); $(stat_ms 0 median "$sc")"
done
bench_info "tune" "outside: send-keys until capture-pane shows it, median / max (ms)" "$(stat_ms 5 median) / $(stat_ms 5 max)"
rm -f "$db" "$db-wal" "$db-shm"

if [ -z "${BENCH_RUN:-}" ]; then # alone: print this script's rows
	tail -n +"$first_row" "$BENCH_TABLE" | column -t -s "$(printf '\t')"
fi
