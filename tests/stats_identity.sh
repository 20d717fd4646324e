#!/bin/sh
# The statistics caches (files under --cache DIR, and the session database)
# notice a parent file that changed underneath: touched, or replaced (renamed
# over) by a file of the same size and header with other data.  The cached
# numbers must not be reused, and the new numbers must be those of a diff
# without any cache.  (Known limit of the identity key - size, mtime, header
# hash: a replacement that puts the old mtime back, as `cp -p`, `rsync -t` or
# `touch -r` do, is not noticed.)
set -u
[ -d "$FIXTURES/models/llama" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
command -v python3 >/dev/null || { echo "python3 is needed"; exit 77; }
fail=0
t() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
base="$FIXTURES/models/llama/base"
cp -r "$FIXTURES/models/llama/math" "$tmp/p"
shard="$tmp/p/model.safetensors"

# check A.json B.json EXPECT: EXPECT is "cached" (every pair of B came from the
# cache) or "fresh" (none did); B's numbers must equal those of A.
check() {
	python3 - "$@" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
want = sys.argv[3]
def pairs(j):
    return {(t["name"], k): p for t in j["tensors"] for k, p in enumerate(t["parents"])}
pa, pb = pairs(a), pairs(b)
strip = lambda p: {k: v for k, v in p.items() if k != "cached"}
ok = len(pa) == len(pb) > 0
cached = [p["cached"] for p in pb.values() if p["status"] in ("ok", "identical")]
if want == "cached" and not all(cached): ok = False; print("  some pairs were computed again")
if want == "fresh" and any(cached): ok = False; print("  %d stale pairs came from the cache" % sum(cached))
bad = [n for n in pa if strip(pa[n]) != strip(pb.get(n, {}))]
if bad: ok = False; print("  numbers differ from the uncached diff for", bad[:3])
sys.exit(0 if ok else 1)
PY
}
D() { "$CRUCIBLE" diff --json "$@" "$base" "$tmp/p"; }

for mode in "--cache $tmp/cache" "--db $tmp/s.db"; do
	what=${mode%% *}
	cp "$FIXTURES/models/llama/math/model.safetensors" "$shard"
	D --no-cache >"$tmp/ref.json" 2>"$tmp/err"
	D $mode >"$tmp/1.json" 2>"$tmp/err"; t "$what: first diff" '[ $? -eq 0 ] && check "$tmp/ref.json" "$tmp/1.json" fresh'
	D $mode >"$tmp/2.json" 2>"$tmp/err"; t "$what: second diff is cached" '[ $? -eq 0 ] && check "$tmp/ref.json" "$tmp/2.json" cached'

	touch "$shard"
	D $mode >"$tmp/3.json" 2>"$tmp/err"; t "$what: touched file is scanned again" '[ $? -eq 0 ] && check "$tmp/ref.json" "$tmp/3.json" fresh'

	# same size, same header, different data, renamed over
	python3 - "$shard" "$shard.new" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
start = 8 + struct.unpack("<Q", d[:8])[0]
for i in range(start, len(d), 2):   # BF16/F16: flip the sign bit of every element's high byte
    d[i + 1] ^= 0x80
open(sys.argv[2], "wb").write(d)
PY
	touch -d "@$(($(stat -c %Y "$shard") + 5))" "$shard.new"   # a different mtime, even on coarse clocks
	mv "$shard.new" "$shard"
	D --no-cache >"$tmp/ref2.json" 2>"$tmp/err"
	t "$what: (the replacement changes the numbers)" '! check "$tmp/ref.json" "$tmp/ref2.json" fresh >/dev/null'
	D $mode >"$tmp/4.json" 2>"$tmp/err"
	t "$what: replaced file is scanned again" '[ $? -eq 0 ] && check "$tmp/ref2.json" "$tmp/4.json" fresh'
done
exit $fail
