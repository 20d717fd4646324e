# Shared harness for the tmux-driven workbench tests (sourced, not run).
#
# Each test gets its own tmux server, temp HOME/XDG folders and database,
# a fixed 120x40 window, and pinned LANG/LC_ALL, TERM and TZ.  Screens are
# polled until the expected text shows up (never fixed sleeps), and the tmux
# server is always killed on exit.
set -u
command -v tmux >/dev/null 2>&1 || { echo "tmux not found: skipping"; exit 77; }
[ -n "${CRUCIBLE:-}" ] && [ -x "$CRUCIBLE" ] || { echo "CRUCIBLE is not set"; exit 1; }
[ -d "${FIXTURES:-}" ] || { echo "no fixtures at ${FIXTURES:-}"; exit 77; }

T_SOCK="crucible-test-$$-0"
T_N=0
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/crucible-tui.XXXXXX")
export HOME="$T_DIR/home" XDG_CONFIG_HOME="$T_DIR/config" XDG_DATA_HOME="$T_DIR/data" XDG_CACHE_HOME="$T_DIR/cache"
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
T_DB="$T_DIR/sessions.db"
T_TIMEOUT=${T_TIMEOUT:-60}
DSV3="$FIXTURES/models/dsv3"

t_cleanup() {
	tmux -L "$T_SOCK" kill-server 2>/dev/null
	rm -rf "$T_DIR"
}

# t_stop: end this test's tmux server (each t_start gets a new one, so a
# dying server is never reused).
t_stop() { tmux -L "$T_SOCK" kill-server 2>/dev/null; }
trap t_cleanup EXIT INT TERM

# t_start [TERM=...] ARGS...: start crucible in a fresh 120x40 session.
t_start() {
	t_stop
	T_N=$((T_N + 1))
	T_SOCK="crucible-test-$$-$T_N"
	term=tmux-256color
	case "${1:-}" in TERM=*) term=${1#TERM=}; shift ;; esac
	cmd="cd '$T_DIR' && env LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC TERM=$term HOME='$HOME' XDG_CONFIG_HOME='$XDG_CONFIG_HOME' XDG_DATA_HOME='$XDG_DATA_HOME' XDG_CACHE_HOME='$XDG_CACHE_HOME' ASAN_OPTIONS='${ASAN_OPTIONS:-}' UBSAN_OPTIONS='${UBSAN_OPTIONS:-}' CRUCIBLE_TUI_SLOW_RUN='${CRUCIBLE_TUI_SLOW_RUN:-}' CRUCIBLE_TUI_TIMING='${CRUCIBLE_TUI_TIMING:-}' '$CRUCIBLE'"
	for a in "$@"; do cmd="$cmd '$a'"; done
	cmd="$cmd 2>'$T_DIR/stderr'; echo \"[crucible exited \$?]\"; sleep 3600"
	tmux -L "$T_SOCK" -f /dev/null new-session -d -s t -x 120 -y 40 "$cmd"
}

t_screen() { tmux -L "$T_SOCK" capture-pane -p -t t; }

# t_keys KEY...: tmux key names (Enter, Tab, Left, C-r) or literal strings via -l.
t_keys() { tmux -L "$T_SOCK" send-keys -t t "$@"; }
t_type() { tmux -L "$T_SOCK" send-keys -t t -l "$1"; }

t_fail() {
	echo "FAIL: $*"
	echo "---- screen ----"
	t_screen
	echo "---- stderr ----"
	cat "$T_DIR/stderr" 2>/dev/null
	exit 1
}

# t_wait TEXT [SECONDS]: poll the screen until it contains TEXT (fixed string).
t_wait() {
	end=$(( $(date +%s) + ${2:-$T_TIMEOUT} ))
	while :; do
		t_screen | grep -qF -- "$1" && return 0
		[ "$(date +%s)" -ge "$end" ] && t_fail "timed out waiting for: $1"
		sleep 0.1
	done
}

# t_wait_gone TEXT [SECONDS]: poll until TEXT is no longer on screen.
t_wait_gone() {
	end=$(( $(date +%s) + ${2:-$T_TIMEOUT} ))
	while :; do
		t_screen | grep -qF -- "$1" || return 0
		[ "$(date +%s)" -ge "$end" ] && t_fail "timed out waiting for this to go away: $1"
		sleep 0.1
	done
}

# t_click X Y [BUTTON]: a mouse press and release at column X, row Y (0-based),
# sent as the X10 mouse sequence the terminal would send (BUTTON 0 = left,
# 64 = wheel up, 65 = wheel down; wheel events have no release).
t_click() {
	seq=$(python3 -c "import sys
x, y, b = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
e = lambda c: '\x1b[M' + chr(32 + c) + chr(33 + x) + chr(33 + y)
sys.stdout.write(e(b) + ('' if b >= 64 else e(3)))" "$1" "$2" "${3:-0}")
	tmux -L "$T_SOCK" send-keys -t t -l "$seq"
}

# t_col TEXT [ROW]: the screen column where TEXT first appears on row ROW (default: the header, row 1).
t_col() { t_screen | python3 -c "import sys; l = sys.stdin.read().split('\n')[int(sys.argv[2])]; print(l.find(sys.argv[1]))" "$1" "${2:-1}"; }

# t_row TEXT: the first screen row containing TEXT.
t_row() { t_screen | grep -n -m1 -F -- "$1" | cut -d: -f1 | awk '{print $1 - 1}'; }

# t_line PATTERN: the first screen line matching an extended regex.
t_line() { t_screen | grep -E -m1 -- "$1"; }

t_expect_line() {
	t_line "$1" >/dev/null || t_fail "no line matches /$1/"
}
t_expect_no_line() {
	if t_line "$1" >/dev/null; then t_fail "a line matches /$1/ but should not"; fi
}

# t_quit: q, then wait for the exit line; fails on a non-zero status.
t_quit() {
	t_keys q
	t_wait "[crucible exited"
	t_screen | grep -qF "[crucible exited 0]" || t_fail "crucible did not exit with 0"
}
