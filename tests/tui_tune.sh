#!/bin/sh
# Tune λ on the routed-expert class and watch the decision column and the
# summary change; undo/redo; export the recipe; run the merge to the end and
# check the output against the reference; cancel a merge (no folder left);
# reopen the session and find the same λ.
. "${SRCDIR:-.}/tests/tui_lib.sh"

t_start --db "$T_DB" --base "$DSV3/v3-base" "$DSV3/r1" "$DSV3/r1-0528"
t_wait "statistics ready for 173 tensors"
# The starting point: the base everywhere.
t_expect_line " routed_expert +96 5.6M +- +- +-"
t_expect_line "^▾ layer 0 .* base *$"

# Scope: the routed-expert class, typed on the scope row.
t_keys Tab Up Enter
t_wait "scope (all, class:NAME, layers:A-B, filter:TEXT):"
t_type "class:routed_expert"
t_keys Enter
t_wait "scope           ◂ class:routed_expert ▸"
# λ r1 one step up (the panel's cursor is on λ v3-base; r1 is the next row).
t_keys Down Down Right
t_wait "weight r1 = 0.05 on class:routed_expert"
t_expect_line "λ r1 +◂ 0.05 ▸"
# Base and r1 mixed: the experts are computed.
t_expect_line " routed_expert +- +- +- +96 5.6M"
# λ v3-base to 0 on the class: all the weight is r1's, so r1's experts are copied.
t_keys Up Enter C-u
t_type "0"
t_keys Enter
t_wait "weight v3-base = 0 on class:routed_expert"
t_expect_line " routed_expert +- +96 5.6M +- +-"
t_expect_line "attn +25 1.3M +- +- +-"
# The prompt starts with the current value selected: typing replaces it (no C-u).
t_keys Down Enter
t_wait "on class:routed_expert: 0.05"
t_type "1"
t_keys Enter
t_wait "weight r1 = 1 on class:routed_expert"
t_expect_line " routed_expert +- +96 5.6M +- +-"
# The decision column says so, tensor by tensor.
t_keys Tab /
t_type "layers.2.mlp.experts.3.up"
t_keys Enter
t_wait_gone "search:"
t_expect_line "mlp.experts.3.up_proj.weight +routed_expert .* r1 *$"
t_expect_line "self_attn.o_proj.weight +attn .* base *$"

# Undo twice: back to the mix; redo twice: r1 again.
t_keys u
t_wait "undone"
t_keys u
t_wait "λ v3-base       ◂ 1 ▸"
t_expect_line " routed_expert +- +- +- +96 5.6M"
t_expect_line "mlp.experts.3.up_proj.weight +routed_expert .* merge *$"
t_keys C-r C-r
t_wait "λ r1            ◂ 1 ▸"
t_expect_line "λ v3-base +◂ 0 ▸"
t_expect_line " routed_expert +- +96 5.6M +- +-"

# δ = 0.05 for all tensors, as in the reference recipe (the panel's cursor is on λ r1).
t_keys Tab Up Up Enter C-u
t_type "all"
t_keys Enter
t_wait "scope           ◂ all tensors ▸"
t_keys Down Down Down Down Enter C-u
t_type "0.05"
t_keys Enter
t_wait "delta = 0.05 on all tensors"

# Export the recipe.
t_keys Tab e C-u
t_type "$T_DIR/recipe.yaml"
t_keys Enter
t_wait "recipe written to $T_DIR/recipe.yaml"
grep -Eq 'class: "?routed_expert' "$T_DIR/recipe.yaml" || t_fail "exported recipe has no class condition"
grep -Eq 'merge_method: "?aoe' "$T_DIR/recipe.yaml" || t_fail "exported recipe has no method"

# Merge to the end and compare with the reference R1T-style result.
t_keys m
t_wait "merge into folder: v3-base-merged"   # suggested; typing replaces it
t_type "$T_DIR/out"
t_keys Enter
t_wait "merge done: $T_DIR/out" 120
python3 "$FIXTURES/../tools/check_merge.py" "$FIXTURES/expected/aoe-r1t-dsv3" "$T_DIR/out" > "$T_DIR/check.txt" 2>&1 ||
	{ cat "$T_DIR/check.txt"; t_fail "check_merge.py failed"; }
tail -1 "$T_DIR/check.txt"

# Cancel a merge (slowed down so there is time): the output folder must not exist.
t_quit
CRUCIBLE_TUI_SLOW_RUN=300
t_start --db "$T_DB" --session 1
t_wait "statistics ready for 173 tensors"
t_keys m
t_wait "merge into folder:"
t_type "$T_DIR/out2"
t_keys Enter
t_wait "merging"
# Quitting during a run asks first; 'n' keeps it going.
t_keys q
t_wait "A merge is running. Cancel it and quit? (y/n)"
t_keys n
t_wait "merging"
t_keys x
t_wait "Cancel the running merge? (y/n)"
t_keys y
t_wait "merge cancelled: $T_DIR/out2 was not created" 60
[ ! -e "$T_DIR/out2" ] || t_fail "out2 exists after cancel"
[ ! -e "$T_DIR/out2.partial" ] || t_fail "out2.partial exists after cancel"

# The reopened session has the same λ on the class.
t_keys Tab Up Enter C-u
t_type "class:routed_expert"
t_keys Enter
t_wait "scope           ◂ class:routed_expert ▸"
t_expect_line "λ v3-base +◂ 0 ▸"
t_expect_line "λ r1 +◂ 1 ▸"
t_expect_line " routed_expert +- +96 5.6M +- +-"
t_quit
exit 0
