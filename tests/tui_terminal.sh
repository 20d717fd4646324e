#!/bin/sh
# Terminal conditions: TERM=dumb and an unknown TERM are refused with one
# clear line; no TTY is refused; a terminal without colours and the ASCII
# glyph set work; a bad theme line gives a warning naming file and line.
. "${SRCDIR:-.}/tests/tui_lib.sh"

# TERM=dumb cannot move the cursor.
t_start TERM=dumb --base "$DSV3/v3-base" "$DSV3/r1"
t_wait "[crucible exited 1]"
grep -q "terminal 'dumb' cannot move the cursor" "$T_DIR/stderr" || t_fail "no clear message for TERM=dumb"
[ "$(wc -l < "$T_DIR/stderr")" -eq 1 ] || t_fail "TERM=dumb message is not one line"

t_start TERM=no-such-terminal --base "$DSV3/v3-base" "$DSV3/r1"
t_wait "[crucible exited 1]"
grep -q "unknown terminal type TERM='no-such-terminal'" "$T_DIR/stderr" || t_fail "no clear message for an unknown TERM"

# Without a terminal at all.
out=$("$CRUCIBLE" --base "$DSV3/v3-base" "$DSV3/r1" </dev/null 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] || { echo "FAIL: no TTY gave exit $rc"; exit 1; }
echo "$out" | grep -q "needs a terminal" || { echo "FAIL: no TTY message: $out"; exit 1; }

# A bad model path fails with one line before the screen is touched.
t_start --base /nonexistent/model "$DSV3/r1"
t_wait "[crucible exited 1]"
grep -q "^crucible: /nonexistent/model" "$T_DIR/stderr" || t_fail "no clear message for a bad base path"
t_start --base "$DSV3/v3-base" /nonexistent/parent
t_wait "[crucible exited 1]"
grep -q "^crucible: /nonexistent/parent: No such file or directory" "$T_DIR/stderr" || t_fail "no clear message for a bad parent"

# A session that is not in the database.
t_start --db "$T_DB" --session 99
t_wait "[crucible exited 1]"
grep -q "^crucible: .*99" "$T_DIR/stderr" || t_fail "no clear message for an unknown session"

# vt100 has no colours: the screen still works; ASCII glyphs with --ascii.
t_start TERM=vt100 --ascii --base "$DSV3/v3-base" "$DSV3/r1"
t_wait "base v3-base  parents r1"
t_expect_line "^- layer 0 +12 tensors"
t_expect_line "^\+ layer 1 +38 tensors"
t_screen | grep -q "[▸▾…]" && t_fail "non-ASCII glyphs with --ascii"
t_quit

# A theme file with a bad line: the warning names the file and the line; the rest applies.
printf 'color cursor black yellow\ncolor title purple blue\n' > "$T_DIR/bad.theme"
t_start --theme "$T_DIR/bad.theme" --base "$DSV3/v3-base" "$DSV3/r1"
t_wait "bad.theme:2: unknown colour 'purple'"
t_quit

# The theme named in the config file; an unknown theme name is a warning, not a failure.
mkdir -p "$XDG_CONFIG_HOME/crucible"
printf 'theme = no-such-theme\n' > "$XDG_CONFIG_HOME/crucible/config"
t_start --base "$DSV3/v3-base" "$DSV3/r1"
t_wait "theme 'no-such-theme' not found"
t_quit
t_start --theme "$SRCDIR/themes/mono" --base "$DSV3/v3-base" "$DSV3/r1"
t_wait "base v3-base  parents r1"
t_expect_no_line "not found"
t_quit
exit 0
