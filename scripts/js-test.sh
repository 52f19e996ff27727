#!/usr/bin/env bash
# Runs the JavaScript client's tests (clients/js/test) with Node's built-in test runner: unit
# tests against a scripted fake binding server, and tests against a real two-region cluster.
# Builds nothing: the cluster tests start the edgekv binary at EDGEKV_BIN, by default
# target/debug/edgekv (`cargo build -p edgekv-cli --bin edgekv`). Needs Node 20 or later.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${EDGEKV_BIN:-${CARGO_TARGET_DIR:-target}/debug/edgekv}"
if [ ! -x "$bin" ]; then
    echo "edgekv binary not found at $bin: run \`cargo build -p edgekv-cli --bin edgekv\` or set EDGEKV_BIN" >&2
    exit 1
fi
export EDGEKV_BIN="$bin"

if ! command -v node >/dev/null; then
    echo "node not found: the JavaScript client's tests need Node 20 or later" >&2
    exit 1
fi
version="$(node --version)"
major="${version#v}"
major="${major%%.*}"
if [ "$major" -lt 20 ]; then
    echo "node $version is too old: the JavaScript client's tests need Node 20 or later" >&2
    exit 1
fi

echo "== JavaScript client tests (node $version, $EDGEKV_BIN)"
node --test clients/js/test/
