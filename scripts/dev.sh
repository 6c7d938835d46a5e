#!/usr/bin/env bash
# `make dev`: moto on MOTO_PORT (default 4566), then the local stack on LOCAL_PORT (default
# 3001). Ctrl-C stops both.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/venv.sh
export MOTO_PORT=${MOTO_PORT:-4566} LOCAL_PORT=${LOCAL_PORT:-3001}
cargo build --release -p local --bin local
mkdir -p target
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >target/moto-dev.log 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
target/release/local dev
