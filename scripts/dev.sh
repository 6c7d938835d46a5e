#!/usr/bin/env bash
# `make dev`: moto on MOTO_PORT (default 4566), then the local stack (dev/stack, the `local`
# bin) on LOCAL_PORT (default 3001). Ctrl-C stops the stack gracefully (every socket's
# $disconnect still reaches moto), then moto; the exit status is the stack's. LOCAL_POST_RATE,
# LOCAL_LATENCY_MS, LOCAL_FAULT_429... set the emulated API Gateway's faults (README).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/venv.sh
export MOTO_PORT=${MOTO_PORT:-4566} LOCAL_PORT=${LOCAL_PORT:-3001} MOTO_LOG="$root/target/moto-dev.log"
cargo build --release -p stack --bin local
exec scripts/with-moto.sh target/release/local dev
