#!/bin/sh
# Make the seed corpus of one fuzz target from the shared fixtures.
#   seeds.sh TARGET FIXTURES OUTDIR     TARGET: safetensors | index | recipe | theme
# Small files only (libFuzzer mutates better from small inputs); big fixture
# shards are cut to their header so the mutations land in the JSON.
set -eu
target=$1 fx=$2 out=$3
mkdir -p "$out"
n=0
put() { # put SRC NAME
	cp "$1" "$out/$2" && chmod u+w "$out/$2" && n=$((n + 1))
}
case "$target" in
safetensors)
	for f in "$fx"/malformed/*.safetensors "$fx"/real/2022-writer/*.safetensors "$fx"/real/*.safetensors \
		"$fx"/models/*/*/*.safetensors; do
		[ -f "$f" ] || continue
		name=$(echo "$f" | sed "s|^$fx/||; s|/|_|g")
		if [ "$(stat -c %s "$f")" -le 16384 ]; then
			put "$f" "$name"
		else
			# header only: a file whose buffer is cut off (the reader must reject it)
			# plus, for small headers, nothing else; mutations find the rest
			len=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
			[ "$len" -le 200000 ] && head -c $((8 + len)) "$f" >"$out/$name.header" && n=$((n + 1))
		fi
	done
	;;
index)
	for f in "$fx"/malformed/index-*/model.safetensors.index.json "$fx"/models/*/*/model.safetensors.index.json; do
		[ -f "$f" ] || continue
		put "$f" "$(echo "$f" | sed "s|^$fx/||; s|/|_|g")"
	done
	;;
recipe)
	for f in "$fx"/expected/*.yaml "$(dirname "$0")"/../tests/data/recipes/*.yaml; do
		[ -f "$f" ] && put "$f" "$(basename "$f")"
	done
	;;
theme)
	for f in "$(dirname "$0")"/../themes/*; do
		[ -f "$f" ] && put "$f" "$(basename "$f")"
	done
	;;
*)
	echo "seeds.sh: unknown target $target" >&2
	exit 2
	;;
esac
echo "seeds.sh: $n seeds for $target in $out"
