#!/usr/bin/env bash
# `make test` runs this: the client library's pinned dev dependencies, its type check (strict),
# the build (dist/: ES modules, declarations and the browser bundle), and its tests with node's
# test runner on the compiled tests (Node 20 cannot run TypeScript itself). Ends with
# "client: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"

npm ci --no-audit --no-fund --loglevel=error
npx --no-install tsc --noEmit -p tsconfig.test.json
npm run --silent build
rm -rf build
npx --no-install tsc -p tsconfig.test.json

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
status=0
node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  build/test/*.test.js || status=$?
node tools/size.mjs
pass=$(sed -n 's/^# pass //p' "$tap")
fail=$(sed -n 's/^# fail //p' "$tap")
echo "client: ${pass:-0} passed, ${fail:-0} failed"
exit $status
