#!/usr/bin/env bash
# `make bench` / `make bench-quick`: the fan-out benchmark (local/src/bench) against a
# moto_server of its own on a free loopback port. Arguments go to `local bench` (--quick,
# --connections N, --scenarios fanout,baseline, ...; `target/release/local bench --help`).
# Writes target/bench/bench.{txt,json,svg} and bench.log; moto's log is target/bench/moto.log.
# moto and the benchmark run at nice BENCH_NICE (default -5, where allowed) so that builds around
# them take less of the two cores; the table's "other cores" column shows what they still took.
# LOCAL_BIN=path runs that binary instead of building the release one (e.g. a build with
# symbols, for perf).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/venv.sh

# Each real socket takes two descriptors in this one process (client and server side).
want=65536
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then ulimit -n "$want"; else ulimit -n "$hard"; fi
echo "open-file limit: $(ulimit -n)" >&2

bin=${LOCAL_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -p local --bin local
  bin=target/release/local
fi

nice=${BENCH_NICE:--5}
run=(nice -n "$nice")
"${run[@]}" true 2>/dev/null || run=()

mkdir -p target/bench
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
${run[@]+"${run[@]}"} .venv/bin/moto_server -H 127.0.0.1 -p "$port" >target/bench/moto.log 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; wait $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then break; fi
  kill -0 $moto 2>/dev/null || { echo "moto_server failed to start; see target/bench/moto.log" >&2; exit 1; }
  sleep 0.2
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
# moto's CPU time is reported beside ours: it is a separate process on the same two cores.
export MOTO_PID=$moto
started=$(date +%s)
status=0
${run[@]+"${run[@]}"} "$bin" bench "$@" || status=$?
echo "make bench took $(( $(date +%s) - started )) s (moto start and build excluded)" >&2
exit $status
