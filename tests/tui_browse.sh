#!/bin/sh
# Browse the dsv3 fixture family in the workbench: the tree, folding, sorting,
# flat list, search, filter, help, heat map and a resize.
. "${SRCDIR:-.}/tests/tui_lib.sh"

t_start --base "$DSV3/v3-base" "$DSV3/r1" "$DSV3/r1-0528"
t_wait "base v3-base  parents r1 r1-0528"
# The catalog's numbers, counted independently from the fixture's headers.
ntensors=$(python3 - "$DSV3/v3-base" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
names = set()
for f in os.listdir(d):
    if f.endswith(".safetensors"):
        with open(os.path.join(d, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            names |= {k for k in json.loads(fh.read(n)) if k != "__metadata__"}
print(len([k for k in names if not k.endswith("_scale_inv")]))
PY
)
t_wait "$ntensors tensors"
# Column headers, layer rows, the first layer open.
t_expect_line "^name.*class.*dtype.*shape.*size.*r1 .*r1-0528.*decision"
t_expect_line "^. layer 1 +38 tensors"
t_expect_line "^. layer 4 \(mtp\)"
t_expect_line "^  . attn +5 tensors"

# Fold: '-' on layer 0 (the cursor moves there first) folds it, '+' unfolds.
t_keys Down
t_keys -
t_wait_gone "  ▸ attn"
t_expect_line "^▸ layer 0 +12 tensors"
t_keys +
t_wait "  ▸ attn"
# Enter on a class row unfolds it and shows tensors (short names).
t_keys Down Enter
t_wait "self_attn.kv_b_proj.weight"
t_expect_line "self_attn.q_a_proj.weight +attn +F8_E4M3 +\[192, 320\]"
# '*' unfolds everything: layer 3's experts appear.
t_keys '*' G
t_wait "eh_proj.weight"
t_keys g

# Sort by size (s cycles columns: class, dtype, shape, size), largest first with r.
t_keys s s s s
t_wait "size▴"
t_keys r
t_wait "size▾"
# In the flat list sorted by size descending, the first tensor is the largest one.
t_keys f
t_wait "model.layers"
largest=$(python3 - "$DSV3/v3-base" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
best = []
for f in os.listdir(d):
    if f.endswith(".safetensors"):
        with open(os.path.join(d, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            for k, v in json.loads(fh.read(n)).items():
                if k != "__metadata__" and not k.endswith("_scale_inv"):
                    a, b = v["data_offsets"]
                    best.append((b - a, k))
best.sort(key=lambda x: -x[0])
print(best[0][1])
PY
)
first=$(t_screen | sed -n 3p | awk '{print $1}')
[ "$first" = "$largest" ] || t_fail "flat list by size: first row is '$first', expected '$largest'"
# Back to the tree, sorted by name.
t_keys f
t_keys s s s s
t_wait "name▾"
t_keys r
t_wait "name▴"

# Search: jumps to the first match and unfolds its layer.
t_keys /
t_wait "search:"
t_type "experts.5.up"
t_keys Enter
t_wait_gone "search:"
sel=$(t_screen | grep -c "experts.5.up_proj.weight")
[ "$sel" -ge 1 ] || t_fail "search did not show experts.5.up_proj.weight"
# Filter by class: only routed experts remain (8 experts x 3 weights x 4 layers, MTP included).
t_keys '\'
t_wait "filter (text or class:NAME):"
t_type "class:routed_expert"
t_keys Enter
t_wait "filter 'class:routed_expert': 96 tensors"
t_expect_no_line "self_attn"
t_expect_no_line "shared_experts"
# A substring filter.
t_keys '\' C-u
t_type "e_score_correction"
t_keys Enter
t_wait "filter 'e_score_correction': 4 tensors"
t_keys '\' C-u Enter
t_wait "filter cleared"

# Help is generated from the key table.
t_keys '?'
t_wait "crucible help: keys by screen"
t_expect_line "Tensor browser"
t_expect_line "^ +H +heat map of rel, layers x classes"
t_expect_line "^ +/ +search as you type"
t_keys q
t_wait "base v3-base  parents r1 r1-0528"

# Heat map: one row per layer, a column per class.
t_keys H
t_wait "heat map of rel: r1 vs base v3-base"
t_expect_line "^layer +embed +attn"
t_expect_line "^layer 3 "
t_keys ']'
t_wait "heat map of rel: r1-0528 vs base v3-base"
t_keys Escape
t_wait "base v3-base  parents r1 r1-0528"
# In a window too short for one line per layer the map turns on its side.
tmux -L "$T_SOCK" resize-window -t t -x 120 -y 10
t_keys H
t_wait "one column each (the map is on its side to fit)"
t_expect_line "^class . layer +0 "
t_keys Escape
tmux -L "$T_SOCK" resize-window -t t -x 120 -y 40
t_wait "base v3-base  parents r1 r1-0528"

# rel in the columns matches an independent computation (tests/tui_rel.py
# decodes the fixture's FP8 and BF16 bytes itself), and the detail view shows
# the tensor's statistics and P-B histograms.
name=model.layers.2.mlp.experts.3.up_proj.weight
r1=$(python3 "$SRCDIR/tests/tui_rel.py" "$DSV3/v3-base" "$DSV3/r1" $name)
r2=$(python3 "$SRCDIR/tests/tui_rel.py" "$DSV3/v3-base" "$DSV3/r1-0528" $name)
t_keys /
t_type "layers.2.mlp.experts.3.up"
t_keys Enter
t_wait_gone "search:"
t_wait "$r2" # the scan has reached it
t_expect_line "mlp.experts.3.up_proj.weight +routed_expert .* $r1 .* $r2 "
t_keys Enter
t_wait "tensor $name"
t_expect_line "^ r1 vs v3-base: ok"
t_expect_line "^ r1-0528 vs v3-base: ok"
t_expect_line "FP8 block scales \(6 blocks of 128x128\)"
t_expect_line "P-B histogram"
t_keys q
t_wait "base v3-base  parents r1 r1-0528"

# Mouse: a click on a header sorts by it, a second click reverses; a click on
# a row selects it and a second click folds or unfolds it; the wheel scrolls.
t_click "$(t_col size)" 1
t_wait "size▴"
t_click "$(t_col size)" 1
t_wait "size▾"
t_click "$(t_col name)" 1
t_wait "name▴"
# '*' unfolds everything, or folds everything when nothing is folded: fold all.
t_keys g '*'
t_wait "layer 0"
t_screen | grep -q "^▸ layer 0" || t_keys '*'
t_wait "▸ layer 0"
y=$(t_row "layer 3")
t_click 5 "$y"
t_click 5 "$y"
t_wait "▾ layer 3"
t_expect_line "^  ▸ routed_expert +24 tensors"
t_keys '*'
t_wait "mlp.experts.0.down_proj.weight"
first=$(t_screen | sed -n 3p)
t_click 5 10 65
t_click 5 10 65
t_wait_gone "$first"

# Resize: the layout follows the new width (the shape column goes when narrow).
tmux -L "$T_SOCK" resize-window -t t -x 90 -y 30
t_wait_gone "shape"
t_screen | python3 -c 'import sys; sys.exit(any(len(l.rstrip("\n")) > 90 for l in sys.stdin))' ||
	t_fail "lines wider than the window after resize"
t_expect_line "^name.*class.*dtype.*size"
tmux -L "$T_SOCK" resize-window -t t -x 120 -y 40
t_wait "shape"
t_quit
exit 0
