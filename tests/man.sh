#!/bin/sh
# The manual pages stay true to the code: groff finds nothing to warn about,
# crucible(1) names every command and every long option the commands' --help
# lists, crucible-recipe(5) every merge method, parameter and tensor class
# from the tables in include/crucible/, and crucible-theme(5) every colour
# role.  Skips (77) when groff or the pages are missing.
set -u
man=$SRCDIR/man inc=$SRCDIR/include/crucible
command -v groff >/dev/null 2>&1 || { echo "no groff"; exit 77; }
[ -f "$man/crucible.1" ] || { echo "no man pages yet"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rc=0
fail() { echo "FAIL: $*"; rc=1; }

# Warnings as a UTF-8 terminal would show the page; plain ASCII text (no
# overstrike) for grepping.
render() {
	LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$1" 2>"$tmp/warn"
	LC_ALL=C groff -man -Tascii -P-c -P-b -P-u "$1" 2>/dev/null
}
# Names from an X-macro table: the first string literal of each X(...) line
# between "#define TABLE(X)" and the first line not ending in a backslash.
table_names() {
	sed -n "/#define $2(X)/,/[^\\\\]\$/p" "$1" | grep -o 'X([A-Z0-9_]*, *"[^"]*"' | sed 's/.*"\(.*\)"/\1/'
}
has() { grep -q -- "$2" "$1"; }

for page in "$man"/*.[1-9]; do
	render "$page" >"$tmp/$(basename "$page").txt"
	[ -s "$tmp/warn" ] && fail "$(basename "$page"): groff warnings: $(head -3 "$tmp/warn")"
done

t1=$tmp/crucible.1.txt
for cmd in $(sed -n 's/^[[:space:]]*X(\([a-z]*\), cmd_.*/\1/p' "$SRCDIR/src/cli/cli.h"); do
	has "$t1" "crucible $cmd" || fail "crucible.1 does not show 'crucible $cmd'"
	"$CRUCIBLE" "$cmd" --help 2>/dev/null | grep -q 'not built\|not yet' && continue
	for opt in $("$CRUCIBLE" "$cmd" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		[ "$opt" = --help ] && continue
		has "$t1" "$opt" || fail "crucible.1: 'crucible $cmd' option $opt is not documented"
	done
done

# The workbench's own options (its getopt table in src/tui/tui_main.c).
if [ -f "$SRCDIR/src/tui/tui_main.c" ]; then
	for opt in $(grep -o '{ "[a-z][a-z-]*", *[a-z_]*_argument' "$SRCDIR/src/tui/tui_main.c" | sed 's/{ "\([^"]*\)".*/\1/'); do
		[ "$opt" = help ] && continue
		has "$t1" "--$opt" || fail "crucible.1: workbench option --$opt is not documented"
	done
fi

# The KEYS section carries the key table's help text (src/tui/keys.h).
if [ -f "$SRCDIR/src/tui/keys.h" ]; then
	sed 's/\\-/-/g' "$man/crucible.1" >"$tmp/crucible.1.src"
	grep -o 'X([A-Z]*, *[A-Z_]*, *"[^"]*"' "$SRCDIR/src/tui/keys.h" | sed 's/.*"\(.*\)"/\1/' >"$tmp/keys"
	while IFS= read -r help; do
		grep -qF -- "$help" "$tmp/crucible.1.src" || fail "crucible.1 does not list the key for: $help"
	done <"$tmp/keys"
	[ -s "$tmp/keys" ] || fail "no key help found in src/tui/keys.h"
fi

t5=$tmp/crucible-recipe.5.txt
if [ -f "$t5" ]; then
	for m in $(table_names "$inc/methods.h" CR_METHODS); do
		has "$t5" "$m" || fail "crucible-recipe.5 does not describe method $m"
	done
	for p in $(table_names "$inc/methods.h" CR_PARAMS); do
		has "$t5" "$p" || fail "crucible-recipe.5 does not describe parameter $p"
	done
	for c in $(table_names "$inc/classify.h" CR_CLASSES); do
		has "$t5" "$c" || fail "crucible-recipe.5 does not list class $c"
	done
	for k in merge_method base_model models slices layer_range parameters dtype out_dtype random_seed \
		filter class value float8_e4m3fn; do
		has "$t5" "$k" || fail "crucible-recipe.5 does not mention $k"
	done
else
	fail "no man/crucible-recipe.5"
fi

tt=$tmp/crucible-theme.5.txt
if [ -f "$inc/theme.h" ]; then
	[ -f "$tt" ] || fail "no man/crucible-theme.5"
	for r in $(table_names "$inc/theme.h" CR_COLOR_ROLES); do
		has "$tt" "$r" || fail "crucible-theme.5 does not list role $r"
	done
fi
[ $rc -eq 0 ] && echo "man pages agree with the code"
exit $rc
