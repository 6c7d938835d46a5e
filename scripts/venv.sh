#!/usr/bin/env bash
# Creates .venv with the pinned moto once; re-running is a no-op unless requirements.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.requirements
if [ -f "$stamp" ] && cmp -s requirements.txt "$stamp"; then exit 0; fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
cp requirements.txt "$stamp"
