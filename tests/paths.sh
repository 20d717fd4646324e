#!/bin/sh
# Paths: a checkpoint folder cannot make crucible read outside it, and the
# output never follows a link out of OUT.
#
# Rule (README "Limits"): files of a checkpoint (index, shards, config.json)
# may be symbolic links only to files inside the same folder, or, for a
# Hugging Face cache snapshot (.../snapshots/REV), into that cache's blobs/.
# Output files are always created fresh in OUT.partial: links found there
# are replaced, never written through; an OUT.partial that is itself a link
# is removed (new run) or refused (--resume).
set -u
[ -d "$FIXTURES" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
fail=0
t() { if eval "$2"; then :; else echo "FAIL: $1"; fail=1; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export CRUCIBLE_DB="$tmp/sessions.db"   # runs are recorded here, not in the shared test database
chat="$FIXTURES/models/llama/chat"     # two shards and an index
base="$FIXTURES/models/llama/base"     # model.safetensors
mal="$FIXTURES/malformed"

inspect() { timeout 20 "$CRUCIBLE" inspect "$1" >"$tmp/out" 2>"$tmp/err"; }

# -- reading: index entries and links --
inspect "$mal/index-traversal"; t "index with ../ refused" '[ $? -eq 1 ] && grep -q "outside the checkpoint folder" "$tmp/err"'
inspect "$mal/index-absolute"; t "index with an absolute path refused" '[ $? -eq 1 ] && grep -q "outside the checkpoint folder" "$tmp/err"'

shard=$(cd "$chat" && ls *.safetensors | head -n 1)
mkdir "$tmp/outside" "$tmp/ck-out" "$tmp/ck-in" "$tmp/ck-in/sub"
cp "$chat"/* "$tmp/ck-out/"; cp "$chat"/* "$tmp/ck-in/"
mv "$tmp/ck-out/$shard" "$tmp/outside/$shard"
ln -s "$tmp/outside/$shard" "$tmp/ck-out/$shard"
inspect "$tmp/ck-out"
t "shard linked outside the folder refused" '[ $? -eq 1 ]'
t "... naming the link and the rule" 'grep -q "ck-out/$shard: symbolic link to a file outside the checkpoint folder" "$tmp/err"'
ln -s "../outside/$shard" "$tmp/ck-out/rel.safetensors"
sed "s/$shard/rel.safetensors/" "$chat/model.safetensors.index.json" >"$tmp/ck-out/model.safetensors.index.json"
inspect "$tmp/ck-out"; t "relative link leaving the folder refused" '[ $? -eq 1 ] && grep -q "rel.safetensors: symbolic link" "$tmp/err"'

mv "$tmp/ck-in/$shard" "$tmp/ck-in/sub/$shard"
ln -s "sub/$shard" "$tmp/ck-in/$shard"
inspect "$tmp/ck-in"; t "link to a file inside the folder accepted" '[ $? -eq 0 ]'
"$CRUCIBLE" inspect "$chat" | tail -n +2 >"$tmp/want"
t "... and reads as the original" 'tail -n +2 "$tmp/out" | cmp -s - "$tmp/want"'

# a Hugging Face cache snapshot: every file is a link into ../../blobs
hub="$tmp/hub/models--org--llama-chat"
mkdir -p "$hub/blobs" "$hub/snapshots/0123abc"
for f in "$chat"/*; do
	h=$(sha256sum "$f" | cut -c1-40)
	cp "$f" "$hub/blobs/$h"
	ln -s "../../blobs/$h" "$hub/snapshots/0123abc/$(basename "$f")"
done
inspect "$hub/snapshots/0123abc"; t "Hugging Face cache snapshot accepted" '[ $? -eq 0 ]'
t "... and reads as the original" 'tail -n +2 "$tmp/out" | cmp -s - "$tmp/want"'
mkdir -p "$tmp/hub/models--other/snapshots/r"
for f in "$chat"/*; do ln -s "$hub/snapshots/0123abc/$(basename "$f")" "$tmp/hub/models--other/snapshots/r/"; done
inspect "$tmp/hub/models--other/snapshots/r"; t "snapshot linking into another repository's blobs refused" '[ $? -eq 1 ]'

mkdir "$tmp/cfg"; cp "$base"/* "$tmp/cfg/"; rm "$tmp/cfg/config.json"
ln -s "$base/config.json" "$tmp/cfg/config.json"
inspect "$tmp/cfg"; t "config.json linked outside refused" '[ $? -eq 1 ] && grep -q "config.json: symbolic link" "$tmp/err"'

mkdir "$tmp/fifo"; mkfifo "$tmp/fifo/model.safetensors"
inspect "$tmp/fifo"; t "a FIFO as model.safetensors refused without blocking" '[ $? -eq 1 ] && grep -q "not a regular file" "$tmp/err"'
mkdir "$tmp/dev"; ln -s /dev/zero "$tmp/dev/model.safetensors"
inspect "$tmp/dev"; t "a link to /dev/zero refused" '[ $? -eq 1 ]'

# -- writing: OUT never follows a link --
recipe="$FIXTURES/expected/linear-llama.yaml"
merge() { timeout 120 "$CRUCIBLE" merge "$recipe" --shard-size 200KB "$@" >"$tmp/mout" 2>"$tmp/merr"; }
mkdir "$tmp/victim"; echo canary >"$tmp/victim/canary"
snap() { { find "$tmp/victim" -printf '%p %y %s %T@ %n\n' | sort; cat "$tmp/victim/canary"; } >"$1"; }
# same_as_ref DIR: equal to the reference output (the model card names its folder)
same_as_ref() {
	diff -r -x README.md "$tmp/ref" "$1" >/dev/null &&
		[ "$(sed "s|# $(basename "$1")\$|# NAME|" "$1/README.md")" = "$(sed 's|# ref$|# NAME|' "$tmp/ref/README.md")" ]
}
snap "$tmp/victim.before"
links_in() { [ -z "$(find "$1" -type l)" ]; }

merge -o "$tmp/ref"; t "reference merge" '[ $? -eq 0 ] && [ -d "$tmp/ref" ]'
nshards=$(ls "$tmp/ref" | grep -c '^model-.*safetensors$')
t "several shards ($nshards)" '[ "$nshards" -ge 2 ]'

ln -s "$tmp/victim" "$tmp/o1.partial"
merge -o "$tmp/o1"; t "OUT.partial linked to another folder: merge succeeds" '[ $? -eq 0 ]'
t "... OUT is a real folder without links" '[ -d "$tmp/o1" ] && [ ! -L "$tmp/o1" ] && links_in "$tmp/o1"'
t "... equal to the reference" 'same_as_ref "$tmp/o1"'
snap "$tmp/victim.after"; t "... the linked folder is untouched" 'cmp -s "$tmp/victim.before" "$tmp/victim.after"'

ln -s "$tmp/victim" "$tmp/o2.partial"
merge -o "$tmp/o2" --resume
t "--resume into an OUT.partial that is a link is refused" '[ $? -eq 1 ] && grep -q "o2.partial: not a folder" "$tmp/merr"'
t "... no OUT" '[ ! -e "$tmp/o2" ]'
snap "$tmp/victim.after"; t "... the linked folder is untouched" 'cmp -s "$tmp/victim.before" "$tmp/victim.after"'

# links and hard links inside OUT.partial, at the names the merge writes
mkdir "$tmp/o3.partial"
for f in $(ls "$tmp/ref"); do ln -s "$tmp/victim/canary" "$tmp/o3.partial/$f"; done
ln -s "$tmp/victim/canary" "$tmp/o3.partial/.crucible-manifest.json.tmp"
merge -o "$tmp/o3" --resume; t "--resume with links in OUT.partial succeeds" '[ $? -eq 0 ]'
t "... OUT has no links and equals the reference" 'links_in "$tmp/o3" && same_as_ref "$tmp/o3"'
snap "$tmp/victim.after"; t "... the link targets are untouched" 'cmp -s "$tmp/victim.before" "$tmp/victim.after"'

mkdir "$tmp/o4.partial"
first=$(ls "$tmp/ref" | grep '^model-' | head -n 1)
cp "$tmp/ref/$first" "$tmp/victim/shard-copy"
ln "$tmp/victim/shard-copy" "$tmp/o4.partial/$first"
ln "$tmp/victim/canary" "$tmp/o4.partial/config.json"
snap "$tmp/victim.before"
merge -o "$tmp/o4" --resume; t "--resume with hard links in OUT.partial succeeds" '[ $? -eq 0 ]'
t "... equal to the reference" 'same_as_ref "$tmp/o4"'
t "... the hard-linked files are untouched" 'cmp -s "$tmp/victim/shard-copy" "$tmp/ref/$first" && [ "$(cat "$tmp/victim/canary")" = canary ]'
t "... and no longer shared" '[ "$(stat -c %h "$tmp/victim/canary")" -eq 1 ]'

# the base's support files (tokenizer, generation config) follow the same rule
mkdir "$tmp/lb"; cp "$base"/* "$tmp/lb/"; echo '{"secret": 1}' >"$tmp/outside/secret.json"
ln -s "$tmp/outside/secret.json" "$tmp/lb/tokenizer_config.json"
sed "s|\.\./models/llama/base|$tmp/lb|; s|\.\./models/|$FIXTURES/models/|" "$recipe" >"$tmp/lb.yaml"
timeout 120 "$CRUCIBLE" merge "$tmp/lb.yaml" -o "$tmp/o6" >/dev/null 2>"$tmp/merr"
t "base support file linked outside: refused" '[ $? -eq 1 ] && grep -q "tokenizer_config.json: symbolic link" "$tmp/merr"'
t "... no OUT" '[ ! -e "$tmp/o6" ]'

ln -s "$tmp/victim" "$tmp/o5"
snap "$tmp/victim.before"
merge -o "$tmp/o5"; t "OUT that is a link: refused without --force" '[ $? -eq 1 ] && grep -q "already exists" "$tmp/merr"'
merge -o "$tmp/o5" --force; t "... replaced with --force" '[ $? -eq 0 ] && [ -d "$tmp/o5" ] && [ ! -L "$tmp/o5" ]'
snap "$tmp/victim.after"; t "... the folder it pointed to is untouched" 'cmp -s "$tmp/victim.before" "$tmp/victim.after"'

exit $fail
