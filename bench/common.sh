# Helpers shared by bench/run and every bench/*.sh (POSIX sh; source it).
#
# Environment (bench/run sets and exports it; defaults let a script run alone):
#   CRUCIBLE      the binary under test
#   BENCH_SRC     this folder
#   BENCH_WORK    scratch folder on disk (data made once and kept between runs)
#   BENCH_TMPFS   scratch folder on tmpfs
#   BENCH_TABLE   the TSV every result row is appended to
#   BENCH_RUNS    runs per timing; the median is reported (default 5)
#   BENCH_MEMBW   the membw binary (bench/membw.c), built by bench/run
#
# A benchmark script measures crucible and the floor of the same work in the
# same run, then calls bench_ratio / bench_goal / bench_info.  Times are in
# seconds, from `date +%s%N` around the command (a few ms of fork overhead).

: "${BENCH_SRC:=$(cd "$(dirname "$0")" && pwd)}"
: "${CRUCIBLE:=$BENCH_SRC/../crucible}"
: "${BENCH_WORK:=${TMPDIR:-/tmp}/crucible-bench}"
: "${BENCH_TMPFS:=/dev/shm/crucible-bench-$(id -u)}"
: "${BENCH_TABLE:=$BENCH_WORK/table.tsv}"
: "${BENCH_RUNS:=5}"
: "${BENCH_MEMBW:=$BENCH_WORK/membw}"
mkdir -p "$BENCH_WORK" "$BENCH_TMPFS"
# Runs recorded by `crucible merge` go here, never into the user's session database.
: "${CRUCIBLE_DB:=$BENCH_WORK/sessions.db}"
export CRUCIBLE_DB

bench_die() {
	echo "bench: $*" >&2
	exit 1
}

# time_once CMD... : seconds of one run (CMD's output is discarded).
time_once() {
	_t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || { echo "bench: '$*' failed" >&2; return 1; }
	_t1=$(date +%s%N)
	awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }'
}

# median_time CMD... : median seconds of BENCH_RUNS runs.
median_time() {
	_times=$BENCH_WORK/.times.$$
	: >"$_times"
	_i=0
	while [ "$_i" -lt "$BENCH_RUNS" ]; do
		time_once "$@" >>"$_times" || { rm -f "$_times"; return 1; }
		_i=$((_i + 1))
	done
	sort -n "$_times" | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
	rm -f "$_times"
}

# file_bytes FILE... : total size in bytes (apparent size).
file_bytes() {
	cat_total=0
	for _f in "$@"; do
		cat_total=$((cat_total + $(stat -c %s "$_f")))
	done
	echo "$cat_total"
}

# cat_time FILE... : median seconds to read every input (`cat` to /dev/null).
cat_time() {
	median_time sh -c 'cat "$@" >/dev/null' cat "$@"
}

# dd_write_time DIR BYTES : median seconds to write BYTES into DIR with fsync.
dd_write_time() {
	_mib=$((($2 + 1048575) / 1048576))
	[ "$_mib" -gt 0 ] || _mib=1
	_dd_t=$(median_time dd if=/dev/zero of="$1/.bench-floor" bs=1M count="$_mib" conv=fsync)
	rm -f "$1/.bench-floor"
	echo "$_dd_t"
}

# io_floor OUTDIR OUTBYTES INPUT... : the I/O floor of a job = reading every
# input (cat) + writing its output's size to the same place (dd, fsync).
io_floor() {
	_dir=$1 _bytes=$2
	shift 2
	_c=$(cat_time "$@")
	_w=0
	[ "$_bytes" -gt 0 ] && _w=$(dd_write_time "$_dir" "$_bytes")
	awk -v a="$_c" -v b="$_w" 'BEGIN { printf "%.4f\n", a + b }'
}

# membw_gbs THREADS : memory-read bandwidth in GB/s (vectorized sum, bench/membw.c).
membw_gbs() {
	[ -x "$BENCH_MEMBW" ] || { echo "n/a"; return 0; }
	OMP_NUM_THREADS=$1 "$BENCH_MEMBW" "${BENCH_MEMBW_MIB:-1024}"
}

# write_gbs DIR MIB : write bandwidth with fsync (dd) in GB/s.
write_gbs() {
	_t=$(BENCH_RUNS=3 dd_write_time "$1" $(($2 * 1048576)))
	awk -v t="$_t" -v m="$2" 'BEGIN { printf "%.2f\n", m * 1048576 / t / 1e9 }'
}

# peak_rss_kb CMD... : peak resident set size of CMD in kB (/usr/bin/time -v).
peak_rss_kb() {
	/usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }'
}

# cpu_time CMD... : "U.UUs user+sys" of one run of CMD (both threads together).
cpu_time() {
	/usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ printf "%.2fs user+sys\n", $1 + $2 }'
}

# bench_data NAME SIZE_GB DTYPE PARENTS : the folder $BENCH_WORK/data/NAME with
# base and p1..pPARENTS from bench/mkdata (made once; shared by the scripts).
bench_data() {
	_d=$BENCH_WORK/data/$1
	if [ ! -f "$_d/.complete" ]; then
		_mk=$BENCH_SRC/mkdata
		[ -x "$_mk" ] || make -C "$BENCH_SRC/.." -s bench/mkdata >&2 || bench_die "cannot build bench/mkdata"
		echo "bench: making $_d (once)..." >&2
		rm -rf "$_d"
		mkdir -p "$BENCH_WORK/data"
		"$_mk" "$_d" --size-gb "$2" --dtype "$3" --parents "$4" >&2 || bench_die "mkdata $_d failed"
		touch "$_d/.complete"
	fi
	echo "$_d"
}

# bench_data_rm NAME : delete a data set (disk space)
bench_data_rm() {
	rm -rf "${BENCH_WORK:?}/data/$1"
}

# ---- result rows: case, measure, value, floor, ratio, goal, verdict ----

_row() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_TABLE"
}

# bench_ratio CASE MEASURE SECONDS FLOOR_SECONDS GOAL_RATIO
bench_ratio() {
	_r=$(awk -v t="$3" -v f="$4" 'BEGIN { if (f > 0) printf "%.2f", t / f; else print "n/a" }')
	_v=$(awk -v r="$_r" -v g="$5" 'BEGIN { print (r != "n/a" && r + 0 <= g + 0) ? "ok" : "MISS" }')
	_row "$1" "$2" "${3}s" "${4}s" "$_r" "<= $5 x floor" "$_v"
}

# bench_ratio_info CASE MEASURE SECONDS FLOOR_SECONDS  (a ratio reported without a goal)
bench_ratio_info() {
	_r=$(awk -v t="$3" -v f="$4" 'BEGIN { if (f > 0) printf "%.2f", t / f; else print "n/a" }')
	_row "$1" "$2" "${3}s" "${4}s" "$_r" "-" "-"
}

# bench_check CASE MEASURE VALUE GOAL_TEXT PASSED  (PASSED: 1 or 0, computed by the caller)
bench_check() {
	_v=MISS
	[ "$5" = 1 ] && _v=ok
	_row "$1" "$2" "$3" "-" "-" "$4" "$_v"
}

# bench_goal CASE MEASURE SECONDS GOAL_SECONDS  (an absolute goal)
bench_goal() {
	_v=$(awk -v t="$3" -v g="$4" 'BEGIN { print (t + 0 < g + 0) ? "ok" : "MISS" }')
	_row "$1" "$2" "${3}s" "-" "-" "< ${4}s" "$_v"
}

# bench_info CASE MEASURE VALUE  (a measurement without a goal)
bench_info() {
	_row "$1" "$2" "$3" "-" "-" "-" "-"
}

# bench_skip CASE MEASURE REASON
bench_skip() {
	_row "$1" "$2" "-" "-" "-" "-" "skipped: $3"
}
