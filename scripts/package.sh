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
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bins=(connect disconnect message processor fanout)

# The venv with moto (scripts/venv.sh) plus the packaging tools, installed once per pin change.
scripts/venv.sh
stamp=.venv/.requirements-package
if [ ! -f "$stamp" ] || ! cmp -s requirements-package.txt "$stamp"; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-package.txt
  cp requirements-package.txt "$stamp"
fi
# cargo-lambda finds zig as `python3 -m ziglang` through the venv's python.
export PATH="$root/.venv/bin:$PATH"

arch=${LAMBDA_ARCH:-x86_64}
case "$arch" in
  x86_64) rust_target=x86_64-unknown-linux-gnu ;;
  arm64) rust_target=aarch64-unknown-linux-gnu ;;
  *)
    echo "LAMBDA_ARCH must be x86_64 or arm64, not '$arch'" >&2
    exit 2
    ;;
esac
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$rust_target"; then
  echo "the Rust target $rust_target is not installed: rustup target add $rust_target" >&2
  exit 2
fi

bin_args=()
for bin in "${bins[@]}"; do bin_args+=(--bin "$bin"); done

echo "building ${bins[*]} for provided.al2023 $arch ($rust_target, glibc 2.34)" >&2
# Old zips must not survive a failed build and be deployed by mistake.
for bin in "${bins[@]}"; do rm -f "target/lambda/$bin/bootstrap.zip"; done
cargo lambda build --release --target "$rust_target.2.34" --output-format zip "${bin_args[@]}"

# Lambda takes a zip uploaded directly (as Pulumi does) up to 50 MB.
limit=$((50 * 1000 * 1000))
status=0
printf '%-12s %12s %9s  %s\n' function bytes MiB zip
for bin in "${bins[@]}"; do
  zip="target/lambda/$bin/bootstrap.zip"
  if [ ! -f "$zip" ]; then
    printf '%-12s %12s %9s  %s\n' "$bin" missing - "$zip"
    status=1
    continue
  fi
  bytes=$(stat -c %s "$zip")
  printf '%-12s %12d %9s  %s\n' "$bin" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')" "$zip"
  if [ "$bytes" -gt "$limit" ]; then
    echo "$zip is over Lambda's 50 MB direct-upload limit" >&2
    status=1
  fi
done
exit $status
