#!/usr/bin/env bash
# What `make test` needs beyond Rust, Python and Node: Debian's chromium for the page test.
set -euo pipefail
if [ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "the page test needs Debian's chromium: apt-get install chromium (as root)" >&2
  exit 1
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing chromium for the page test" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
