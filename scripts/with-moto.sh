#!/usr/bin/env bash
# Runs a command against a moto_server of its own, then stops it: the one place moto is started
# (`make dev`, `make test`, `make bench`). The port is MOTO_PORT, or a free loopback port; the
# command sees the endpoint through the SDKs' standard AWS_ENDPOINT_URL and moto's process id
# as MOTO_PID. MOTO_NICE runs moto at that niceness (where allowed).
#
# moto runs in a session of its own (setsid), so the terminal's Ctrl-C reaches the command but
# not moto: the command can still use it while it shuts down (`local dev` runs every socket's
# $disconnect against it). moto is stopped once the command has exited, and the script exits
# with the command's status.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/venv.sh"
port=${MOTO_PORT:-$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
log=${MOTO_LOG:-"$root/target/moto-$port.log"}
mkdir -p "$(dirname "$log")"
run=()
if [ -n "${MOTO_NICE:-}" ] && nice -n "$MOTO_NICE" true 2>/dev/null; then run=(nice -n "$MOTO_NICE"); fi
# A background job of a script is no process group leader, so setsid execs moto in place and
# $! is moto's pid.
${run[@]+"${run[@]}"} setsid "$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
stop_moto() {
  kill "$moto" 2>/dev/null || true
  wait "$moto" 2>/dev/null || true
}
# Also on the way out of an error or a signal before the command ends.
trap stop_moto EXIT
for _ in $(seq 1 100); do
  if "$root/.venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then break; fi
  kill -0 "$moto" 2>/dev/null || { echo "moto_server failed to start; see $log" >&2; exit 1; }
  sleep 0.2
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" MOTO_PID=$moto
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
echo "moto_server at $AWS_ENDPOINT_URL (log: $log)" >&2
status=0
"$@" || status=$?
stop_moto
trap - EXIT
exit "$status"
