#!/usr/bin/env bash
# `make package`: builds every Lambda bin as target/lambda/<bin>/bootstrap.zip for the
# provided.al2023 runtime (handler `bootstrap`), which infra/ deploys.
#
# cargo-lambda (PyPI, pinned in requirements-package.txt) cross-compiles with zig as the linker,
# against glibc 2.34, the glibc of Amazon Linux 2023, so the binaries run there whatever this
# machine's glibc is.
#
#   LAMBDA_ARCH=x86_64 (default) -> x86_64-unknown-linux-gnu.2.34
#   LAMBDA_ARCH=arm64            -> aarch64-unknown-linux-gnu.2.34 (needs
#                                   `rustup target add aarch64-unknown-linux-gnu`; deploy with
#                                   `pulumi config set architecture arm64`)
#
# Beside each zip it records what was built, so a build can be found again and checked:
#   target/lambda/<bin>/bootstrap.json                 {"function","arch","git","builtAt","sha256"}
#   target/lambda/<bin>/bootstrap-<git>-<arch>.zip     a copy kept per commit and architecture
#   target/lambda/<bin>/bootstrap-<git>-<arch>.json    (infra config `artifactBuild` deploys one)
# <git> is `git rev-parse --short=12 HEAD`, with `-dirty` when the work tree has changes. The
# Pulumi program refuses a zip whose bootstrap is not for the stack's architecture.
#
#   scripts/package.sh                  build, then record
#   scripts/package.sh --record-only    record the zips already in target/lambda (no build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# authorizer: deployed only with authMode jwt, but always built, so that turning authentication
# on needs no other build. canary: the end-to-end canary (infra/canary.ts), not part of the pipeline.
bins=(connect disconnect message processor fanout authorizer canary)

arch=${LAMBDA_ARCH:-x86_64}
case "$arch" in
  x86_64) rust_target=x86_64-unknown-linux-gnu ;;
  arm64) rust_target=aarch64-unknown-linux-gnu ;;
  *)
    echo "LAMBDA_ARCH must be x86_64 or arm64, not '$arch'" >&2
    exit 2
    ;;
esac

# The commit the zips are built from; `-dirty` if tracked files differ from it.
build_id() {
  local sha
  if ! sha=$(git rev-parse --short=12 HEAD 2>/dev/null); then
    echo unknown
    return
  fi
  if ! git diff --quiet HEAD -- 2>/dev/null; then sha="$sha-dirty"; fi
  echo "$sha"
}

# Manifest and per-commit copy of each zip, then the size table. Fails if a zip is missing or
# over Lambda's 50 MB direct-upload limit (Pulumi uploads the zip directly).
record() {
  local build bin zip dir bytes sha256 limit=$((50 * 1000 * 1000)) status=0
  build=$(build_id)
  printf '%-12s %12s %9s  %s\n' function bytes MiB zip
  for bin in "${bins[@]}"; do
    dir="target/lambda/$bin"
    zip="$dir/bootstrap.zip"
    rm -f "$dir/bootstrap.json"
    if [ ! -f "$zip" ]; then
      printf '%-12s %12s %9s  %s\n' "$bin" missing - "$zip"
      status=1
      continue
    fi
    bytes=$(stat -c %s "$zip")
    sha256=$(sha256sum "$zip" | cut -d' ' -f1)
    printf '{"function":"%s","arch":"%s","git":"%s","builtAt":"%s","sha256":"%s","bytes":%d}\n' \
      "$bin" "$arch" "$build" "$(date -u +%FT%TZ)" "$sha256" "$bytes" >"$dir/bootstrap.json"
    cp "$zip" "$dir/bootstrap-$build-$arch.zip"
    cp "$dir/bootstrap.json" "$dir/bootstrap-$build-$arch.json"
    printf '%-12s %12d %9s  %s\n' "$bin" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')" "$zip"
    if [ "$bytes" -gt "$limit" ]; then
      echo "$zip is over Lambda's 50 MB direct-upload limit" >&2
      status=1
    fi
  done
  echo "build $build ($arch): target/lambda/<fn>/bootstrap-$build-$arch.zip" >&2
  return $status
}

case "${1:-}" in
  --record-only)
    record
    exit $?
    ;;
  "") ;;
  *)
    echo "usage: $0 [--record-only]" >&2
    exit 2
    ;;
esac

# The venv with moto (scripts/venv.sh) plus the packaging tools, installed once per pin change.
scripts/venv.sh
stamp=.venv/.requirements-package
if [ ! -f "$stamp" ] || ! cmp -s requirements-package.txt "$stamp"; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-package.txt
  cp requirements-package.txt "$stamp"
fi
# cargo-lambda finds zig as `python3 -m ziglang` through the venv's python.
export PATH="$root/.venv/bin:$PATH"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$rust_target"; then
  echo "the Rust target $rust_target is not installed: rustup target add $rust_target" >&2
  exit 2
fi

bin_args=()
for bin in "${bins[@]}"; do bin_args+=(--bin "$bin"); done

echo "building ${bins[*]} for provided.al2023 $arch ($rust_target, glibc 2.34)" >&2
# Old zips (and their manifests) must not survive a failed build and be deployed by mistake.
for bin in "${bins[@]}"; do rm -f "target/lambda/$bin/bootstrap.zip" "target/lambda/$bin/bootstrap.json"; done
cargo lambda build --release --target "$rust_target.2.34" --output-format zip "${bin_args[@]}"

record
