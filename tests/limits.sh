#!/bin/sh
# Input limits: huge headers cost memory proportional to the file, never more.
#
# Peak RSS of `crucible inspect` (GNU time) must stay within
#   base + RSS_PER_HEADER_BYTE x header bytes
# where base is the RSS of inspecting a one-tensor file.  The factor covers
# the parsed header (~4 bytes per header byte for minimal one-byte tensors, the
# worst case per header byte; ~17 when jansson built a tree of it) plus the
# catalog built from it; README.md "Limits" documents it.  Under ASan/UBSan only the behaviour is
# checked (ASan's quarantine and redzones change RSS), with fewer tensors.
set -u
command -v python3 >/dev/null || { echo "python3 is needed to generate the files"; exit 77; }
[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is needed to measure RSS"; exit 77; }
RSS_PER_HEADER_BYTE=24
fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

sanitized=no
grep -q __asan_init "$CRUCIBLE" 2>/dev/null && sanitized=yes
ntensors=${CRUCIBLE_LIMITS_TENSORS:-1000000}
[ "$sanitized" = yes ] && ntensors=${CRUCIBLE_LIMITS_TENSORS:-100000}

# gen KIND OUT [N]: writes a valid safetensors file (or checkpoint folder).
#   many N  - N one-byte U8 tensors with short names
#   long N  - one tensor whose name is N bytes long
#   badlong N - like long, but its shape disagrees with its offsets
#   index N - folder: index + shard holding one tensor with an N-byte name
gen() {
	python3 - "$@" <<'PY'
import json, os, struct, sys
kind, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 0
def write(path, entries, data):
    hdr = ("{" + ",".join(entries) + "}").encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + data)
def one(name, shape="[1]"):
    return '"%s":{"dtype":"U8","shape":%s,"data_offsets":[0,1]}' % (name, shape)
if kind == "many":
    write(out, ('"%x":{"dtype":"U8","shape":[],"data_offsets":[%d,%d]}' % (i, i, i + 1) for i in range(n)),
          b"\0" * n)
elif kind == "long":
    write(out, [one("w" * n)], b"\0")
elif kind == "badlong":
    write(out, [one("w" * n, "[2]")], b"\0")
elif kind == "index":
    os.mkdir(out)
    name = "model.layers.0." + "w" * n
    write(os.path.join(out, "s-1.safetensors"), [one(name)], b"\0")
    json.dump({"metadata": {"total_size": 1}, "weight_map": {name: "s-1.safetensors"}},
              open(os.path.join(out, "model.safetensors.index.json"), "w"))
PY
}

# rss FILE...: runs inspect, leaves its status in $rc, peak RSS (KiB) in $kb.
rss() {
	/usr/bin/time -f '%M' -o "$tmp/time" "$CRUCIBLE" inspect "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	kb=$(tail -n 1 "$tmp/time")
}
header_len() { python3 -c 'import struct,sys; print(struct.unpack("<Q", open(sys.argv[1],"rb").read(8))[0])' "$1"; }
# within FILE WHAT: checks the last run against the bound for FILE's header.
within() {
	h=$(header_len "$1")
	limit=$(( base_kb + RSS_PER_HEADER_BYTE * h / 1024 ))
	echo "$2: header $h bytes, peak RSS $kb KiB (base $base_kb KiB, bound $limit KiB," \
		"$(( (kb - base_kb) * 1024 / (h > 0 ? h : 1) )) bytes per header byte)"
	if [ "$sanitized" = yes ]; then
		echo "  (sanitizer build: RSS bound not checked)"
	elif [ "$kb" -gt "$limit" ]; then
		echo "FAIL: $2: peak RSS $kb KiB exceeds $limit KiB"; fail=1
	fi
}
ok() { if [ "$rc" -ne 0 ]; then echo "FAIL: $1: exit $rc: $(head -c 300 "$tmp/err")"; fail=1; fi; }

gen long "$tmp/base.safetensors" 1
rss "$tmp/base.safetensors"; ok "one-tensor file"
base_kb=$kb

gen many "$tmp/many.safetensors" "$ntensors"
rss "$tmp/many.safetensors"; ok "$ntensors tensors"
grep -Eq "tensors +$ntensors " "$tmp/out" || { echo "FAIL: $ntensors tensors not all listed"; fail=1; }
within "$tmp/many.safetensors" "$ntensors tensors"

gen long "$tmp/long.safetensors" 1048576
rss "$tmp/long.safetensors"; ok "1 MiB tensor name"
within "$tmp/long.safetensors" "1 MiB tensor name"
rss --tensors "$tmp/long.safetensors"; ok "1 MiB tensor name listed"
awk '$1 ~ /^w+$/ && length($1) == 1048576 { found = 1 } END { exit !found }' "$tmp/out" || { echo "FAIL: the 1 MiB name is not listed whole"; fail=1; }

gen index "$tmp/idx" 1048576
rss "$tmp/idx"; ok "1 MiB tensor name through an index"
within "$tmp/idx/s-1.safetensors" "1 MiB tensor name through an index"

# An error about a tensor with a huge name is still one short line.
gen badlong "$tmp/badlong.safetensors" 1048576
rss "$tmp/badlong.safetensors"
[ "$rc" -eq 1 ] || { echo "FAIL: shape/offset mismatch with a 1 MiB name: exit $rc, want 1"; fail=1; }
lines=$(wc -l <"$tmp/err"); bytes=$(wc -c <"$tmp/err")
[ "$lines" -eq 1 ] && [ "$bytes" -lt 1100 ] && grep -q "badlong.safetensors: tensor 'www" "$tmp/err" ||
	{ echo "FAIL: error for a 1 MiB name is $lines lines, $bytes bytes"; fail=1; }

# Past the limits: refused before anything of that size is allocated (sparse files).
printf '\001\341\365\005\000\000\000\000' >"$tmp/over.safetensors"   # 100,000,001
truncate -s 100000100 "$tmp/over.safetensors"
rss "$tmp/over.safetensors"
[ "$rc" -eq 1 ] && grep -q "exceeds the limit of 100000000 bytes" "$tmp/err" ||
	{ echo "FAIL: header over 100,000,000 bytes: exit $rc: $(cat "$tmp/err")"; fail=1; }
[ "$sanitized" = yes ] || [ "$kb" -lt $(( base_kb + 8192 )) ] ||
	{ echo "FAIL: a refused header still cost $kb KiB"; fail=1; }

mkdir "$tmp/bigidx"
cp "$tmp/base.safetensors" "$tmp/bigidx/s-1.safetensors"
truncate -s 100000001 "$tmp/bigidx/model.safetensors.index.json"
rss "$tmp/bigidx"
[ "$rc" -eq 1 ] && grep -q "model.safetensors.index.json: larger than 100000000 bytes" "$tmp/err" ||
	{ echo "FAIL: index over 100,000,000 bytes: exit $rc: $(cat "$tmp/err")"; fail=1; }
[ "$sanitized" = yes ] || [ "$kb" -lt $(( base_kb + 8192 )) ] ||
	{ echo "FAIL: a refused index still cost $kb KiB"; fail=1; }

exit $fail
