#!/usr/bin/env bash
# Runs every EdgeKV test: the Rust unit, HTTP and black-box tests, a failpoints build in which
# the simulator and the model checker must catch each broken rule, Cloudflare's official Python
# SDK and schemathesis against a live node, the dashboard in chromium (selenium), the Worker binding client (clients/js) under Node's
# test runner against a live cluster, then the chaos suite on the five-region compose cluster
# (tests/chaos/run.sh), then the same regions as a Docker Swarm stack (tests/swarm/run.sh). Installs the Python packages it needs into a virtualenv under
# the target directory; needs the Rust toolchain, Python 3.11, Node 20, and Docker with Compose (without
# Docker the chaos suite is skipped with a warning, except in CI where it is required).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

echo "== Broken rules are caught (a test build with failpoints)"
# Its own build of the workspace's replication crates, so run apart from the tests above.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run -p edgekv-cli --features failpoints --test failpoints
    cargo nextest run -p edgekv-model --features failpoints
else
    cargo test -p edgekv-cli --features failpoints --test failpoints
    cargo test -p edgekv-model --features failpoints
fi

echo "== Python SDK and OpenAPI tests"
cargo build --quiet -p edgekv-cli --bin edgekv
venv="$target/test-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
EDGEKV_BIN="$target/debug/edgekv" "$venv/bin/python" -m pytest tests/python -q

echo "== Worker binding client (Node)"
EDGEKV_BIN="$target/debug/edgekv" scripts/js-test.sh

echo "== Chaos suite (docker compose)"
if docker info >/dev/null 2>&1 && { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; }; then
    tests/chaos/run.sh
elif [ -n "${CI:-}" ]; then
    echo "the chaos suite needs Docker with Compose" >&2
    exit 1
else
    echo "warning: Docker with Compose not found: chaos suite skipped" >&2
fi

echo "== Docker Swarm stack"
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; then
    # The chaos suite built the image and took the compose cluster down on its way out.
    EDGEKV_SKIP_BUILD="${EDGEKV_SKIP_BUILD:-0}" tests/swarm/run.sh
elif [ -n "${CI:-}" ]; then
    echo "the swarm test needs Docker in swarm mode (.ci/run runs docker swarm init)" >&2
    exit 1
else
    echo "warning: Docker is not in swarm mode: swarm stack test skipped (docker swarm init)" >&2
fi
