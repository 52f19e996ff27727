#!/usr/bin/env bash
# Builds the edgekv image (edgekv:local) from this checkout, offline: a statically linked
# release binary copied into a FROM scratch image.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
image="${EDGEKV_IMAGE:-edgekv:local}"
target="$(rustc -vV | sed -n 's/^host: //p')"
cd "$root"
# Where cargo puts the binary: CARGO_TARGET_DIR when set (relative to the checkout), as cargo does.
out="${CARGO_TARGET_DIR:-target}"
echo "building a static edgekv for $target" >&2
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" -p edgekv-cli
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
# The release profile keeps line tables for backtraces on the host; the image does not need them.
if command -v strip >/dev/null; then
    strip -o "$context/edgekv" "$out/$target/release/edgekv"
else
    cp "$out/$target/release/edgekv" "$context/edgekv"
fi
mkdir "$context/data"
docker build --quiet -t "$image" -f deploy/Dockerfile "$context" >/dev/null
echo "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}'))" >&2
