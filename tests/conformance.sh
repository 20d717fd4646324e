#!/bin/sh
# Runs the shared conformance script's inspect lines against the built binary.
# The merge lines run once the merge engine exists (an empty EXPECTED list).
set -u
[ -d "$FIXTURES" ] || { echo "no fixtures at $FIXTURES"; exit 77; }
tools="$FIXTURES/../tools"
empty=$(mktemp -d); trap 'rm -rf "$empty"' EXIT
out=$(bash "$tools/conformance.sh" "$CRUCIBLE" "$empty" 2>&1)
rc=$?
printf '%s\n' "$out"
exit $rc
