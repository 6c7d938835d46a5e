#!/usr/bin/env bash
# `make dev`: moto on MOTO_PORT (default 4566), then the local stack (dev/stack, the `local`
# bin) on LOCAL_PORT (default 3001). Ctrl-C stops both.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/venv.sh
export MOTO_PORT=${MOTO_PORT:-4566} LOCAL_PORT=${LOCAL_PORT:-3001} MOTO_LOG="$root/target/moto-dev.log"
cargo build --release -p stack --bin local
scripts/with-moto.sh target/release/local dev
