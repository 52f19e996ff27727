#!/usr/bin/env bash
# Stops the five-region cluster and removes its containers, network and volumes (its data).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/compose.sh" down -v --remove-orphans
