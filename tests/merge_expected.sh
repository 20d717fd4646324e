#!/bin/sh
# Every fixture case in expected/ through `crucible merge`, checked by
# ../shared/tools/check_merge.py (values, and byte identity of verbatim
# tensors such as the R1T case).  Also runs one case with 1 and 2 threads and
# compares the bytes.  Skips (77) without python3 or the fixtures.
set -u
: "${CRUCIBLE:?}" "${FIXTURES:=../shared/fixtures}"
exp=$FIXTURES/expected
tool=$FIXTURES/../tools/check_merge.py
command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
[ -d "$exp" ] && [ -f "$tool" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0
for y in "$exp"/*.yaml; do
	case=${y%.yaml} name=${y##*/}
	name=${name%.yaml}
	n=$((n + 1))
	if ! "$CRUCIBLE" merge "$y" -o "$tmp/$name" >"$tmp/log" 2>&1; then
		echo "FAIL $name: merge failed: $(tail -n 1 "$tmp/log")"
		fail=$((fail + 1))
		continue
	fi
	if python3 "$tool" "$case" "$tmp/$name" >"$tmp/check" 2>&1; then
		echo "ok   $name: $(tail -n 1 "$tmp/check")"
	else
		echo "FAIL $name: $(tail -n 1 "$tmp/check"); $(head -n 1 "$tmp/check")"
		fail=$((fail + 1))
	fi
	rm -rf "${tmp:?}/$name"
done
[ "$n" -gt 0 ] || { echo "no cases in $exp"; exit 77; }
# the same bytes with one thread and with two
y=$exp/ties-llama.yaml
if [ -f "$y" ]; then
	"$CRUCIBLE" merge --threads 1 "$y" -o "$tmp/t1" >/dev/null 2>&1 &&
		"$CRUCIBLE" merge --threads 2 "$y" -o "$tmp/t2" >/dev/null 2>&1 &&
		cmp -s "$tmp/t1/model-00001-of-00001.safetensors" "$tmp/t2/model-00001-of-00001.safetensors" ||
		{ echo "FAIL ties-llama: output differs between 1 and 2 threads"; fail=$((fail + 1)); }
fi
# refusals: an existing OUT (1), a bad option (2)
mkdir -p "$tmp/exists"
"$CRUCIBLE" merge "$exp/linear-llama.yaml" -o "$tmp/exists" 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "already exists" "$tmp/err" || { echo "FAIL: existing OUT not refused"; fail=$((fail + 1)); }
"$CRUCIBLE" merge "$exp/linear-llama.yaml" -o "$tmp/x" --shard-size lots 2>/dev/null
[ $? -eq 2 ] || { echo "FAIL: bad --shard-size is not a usage error"; fail=$((fail + 1)); }
echo "$n cases, $fail failed"
[ "$fail" -eq 0 ]
