#!/usr/bin/env bash
# Runs docker compose on the EdgeKV project, with whichever Compose this machine has: the
# `docker compose` plugin or the older `docker-compose`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="${EDGEKV_COMPOSE_PROJECT:-edgekv}"
if docker compose version >/dev/null 2>&1; then
    exec docker compose -p "$project" -f "$here/docker-compose.yml" "$@"
else
    exec docker-compose -p "$project" -f "$here/docker-compose.yml" "$@"
fi
