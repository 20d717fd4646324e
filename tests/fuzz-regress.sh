#!/bin/sh
# Replays the inputs the fuzzers once crashed on (tests/fuzz-regress/TARGET/)
# and the fixtures' malformed files through the fuzz targets, built here with
# the normal compiler (and ASan/UBSan in the sanitizer build).  The targets
# abort when a reader breaks its promises (see fuzz/fuzz_*.c).
set -u
[ -d "$FIXTURES" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
bin=$(dirname "$CRUCIBLE")/tests
rc=0
"$bin/fuzz_replay_safetensors" "$SRCDIR/tests/fuzz-regress/safetensors" "$FIXTURES/malformed" \
	"$FIXTURES/real/2022-writer" || rc=1
idx=
for f in "$FIXTURES"/malformed/index-*/model.safetensors.index.json; do idx="$idx $f"; done
# shellcheck disable=SC2086
"$bin/fuzz_replay_index" "$SRCDIR/tests/fuzz-regress/index" $idx || rc=1
"$bin/fuzz_replay_recipe" "$SRCDIR/tests/fuzz-regress/recipe" "$FIXTURES"/expected/*.yaml || rc=1
"$bin/fuzz_replay_theme" "$SRCDIR/tests/fuzz-regress/theme" "$SRCDIR/themes" || rc=1
exit $rc
