#!/bin/sh
# The sessions screen: list, timeline and runs, rename, compare, fork,
# delete, open, and re-run a recorded run (same bytes as the first run).
. "${SRCDIR:-.}/tests/tui_lib.sh"

# Session 1: base + r1, λ r1 one step up everywhere, merged once.
t_start --db "$T_DB" --base "$DSV3/v3-base" "$DSV3/r1"
t_wait "statistics ready for 173 tensors"
t_keys Tab Down Right
t_wait "weight r1 = 0.05 on all tensors"
t_keys Tab m
t_wait "merge into folder:"
t_type "$T_DIR/out1"
t_keys Enter
t_wait "merge done: $T_DIR/out1" 120
t_quit
# Session 2: base + r1 + r1-0528, untouched.
t_start --db "$T_DB" --base "$DSV3/v3-base" "$DSV3/r1" "$DSV3/r1-0528"
t_wait "statistics ready for 173 tensors"
t_quit

# `crucible` alone opens the sessions screen, newest first.
t_start --db "$T_DB"
t_wait "crucible sessions  2 in $T_DB"
t_expect_line "^ +2 v3-base \+ r1 \+ r1-0528 +3 +4 +0"
t_expect_line "^ +1 v3-base \+ r1 +2 +4 +1 done"
# The preview shows the selected session's timeline.
t_expect_line "session 2 \"v3-base \+ r1 \+ r1-0528\": base $DSV3/v3-base|session 2 \"v3-base \+ r1 \+ r1-0528\": base /"
t_expect_line "set +\* +all models merge_method: \(unset\) -> aoe"
t_keys Down
t_wait "session 1 \"v3-base + r1\""
t_expect_line "set +\* +r1 weight: 0 -> 0.05"
t_expect_line "run 1 .* done +$T_DIR/out1 +173 tensors"

# Rename.
t_keys Up R C-u
t_type "plain three"
t_keys Enter
t_wait 'session 2 renamed to "plain three"'
t_expect_line "^ +2 plain three"
# Compare: mark 2, move to 1, compare.
t_keys C Down C
t_wait "compare session 2 \"plain three\" | session 1 \"v3-base + r1\""
t_expect_line "\* +r1 +weight +0 +\| 0.05"
t_expect_line "\* +r1-0528 +weight +0 +\| \(unset\)"
t_expect_line "2 parameters differ"
# Fork session 1, then delete the fork.
t_keys F
t_wait "session 1 forked into session 3"
t_wait "crucible sessions  3 in"
t_keys g
t_expect_line "^ +3 v3-base \+ r1 \(fork\)"
t_keys D
t_wait 'Delete session 3 "v3-base + r1 (fork)" with its events and runs? (y/n)'
t_keys y
t_wait "session 3 deleted"
t_wait "crucible sessions  2 in"

# Re-run session 1's run into a new folder: the same bytes come out.
t_keys G X
t_wait "re-run into folder:"
t_type "$T_DIR/out1-again"
t_keys Enter
t_wait "merge done: $T_DIR/out1-again" 120
for f in "$T_DIR"/out1/*.safetensors; do
	cmp -s "$f" "$T_DIR/out1-again/$(basename "$f")" || t_fail "re-run output differs: $(basename "$f")"
done

# Open session 1: the browser with its λ.
t_keys Enter
t_wait "base v3-base  parents r1  173 tensors"
t_expect_line "λ r1 +◂ 0.05 ▸"
# S shows the sessions on top; q comes back.
t_keys S
t_wait "crucible sessions  2 in"
t_keys q
t_wait "base v3-base  parents r1  173 tensors"
t_quit
exit 0
