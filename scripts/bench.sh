#!/usr/bin/env bash
# `make bench` / `make bench-quick`: the fan-out benchmark (dev/bench, the `bench` bin) against a
# moto_server of its own on a free loopback port. Arguments go to `bench` (--quick,
# --connections N, --scenarios fanout,sustained,million, ...; `target/release/bench --help`).
# The full run takes about 15 minutes (the sustained scenario's two 120 s writers and the
# 1,000,000-connection broadcast); --quick about 4 (10k connections, 30 s writers, no million).
# Writes target/bench/bench.{txt,json,svg} and bench.log; moto's log is target/bench/moto.log.
# moto and the benchmark run at nice BENCH_NICE (default -5, where allowed) so that builds around
# them take less of the two cores; the table's "other cores" column shows what they still took.
# BENCH_BIN=path runs that binary instead of building the release one (e.g. a build with
# symbols, for perf, or an older build to compare with).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/venv.sh

# Each real socket takes two descriptors in this one process (client and server side).
want=65536
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then ulimit -n "$want"; else ulimit -n "$hard"; fi
echo "open-file limit: $(ulimit -n)" >&2

bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -p bench --bin bench
  bin=target/release/bench
fi

nice=${BENCH_NICE:--5}
run=(nice -n "$nice")
"${run[@]}" true 2>/dev/null || run=()

mkdir -p target/bench
started=$(date +%s)
status=0
# moto's CPU time is reported beside ours (MOTO_PID): it is a separate process on the same cores.
MOTO_NICE=$nice MOTO_LOG=target/bench/moto.log \
  scripts/with-moto.sh ${run[@]+"${run[@]}"} "$bin" "$@" || status=$?
echo "make bench took $(( $(date +%s) - started )) s (build excluded)" >&2
exit $status
