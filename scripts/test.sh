#!/usr/bin/env bash
# Runs every EdgeKV test: the Rust unit, HTTP and black-box tests, then Cloudflare's official
# Python SDK and schemathesis against a live node. Installs the Python packages it needs into a
# virtualenv under the target directory; needs only the Rust toolchain and Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

echo "== Python SDK and OpenAPI tests"
cargo build --quiet -p edgekv-node --bin edgekv
venv="$target/test-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
EDGEKV_BIN="$target/debug/edgekv" "$venv/bin/python" -m pytest tests/python -q
