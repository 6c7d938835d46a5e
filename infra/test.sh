#!/usr/bin/env bash
# `make test` runs this: the Pulumi program's pinned dependencies, its type check (strict) and its
# tests on Pulumi's mocks (no Pulumi CLI, no cloud account). Ends with "infra: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"

npm ci --no-audit --no-fund --loglevel=error
npx --no-install tsc --noEmit -p .

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
status=0
# One process per test file (node's default): each runs the program once on its own mocks.
node --import tsx --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  tests/*.test.ts || status=$?
pass=$(sed -n 's/^# pass //p' "$tap")
fail=$(sed -n 's/^# fail //p' "$tap")
echo "infra: ${pass:-0} passed, ${fail:-0} failed"
exit $status
