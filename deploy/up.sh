#!/usr/bin/env bash
# Builds the image from this checkout and starts the five-region cluster; returns once every
# region reports healthy. EDGEKV_SKIP_BUILD=1 reuses an image built before.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${EDGEKV_SKIP_BUILD:-0}" != 1 ]; then
    "$here/build-image.sh"
fi
"$here/compose.sh" up -d --remove-orphans >&2
regions="wnam enam weur eeur apac"
deadline=$((SECONDS + ${EDGEKV_UP_TIMEOUT:-90}))
for region in $regions; do
    while true; do
        id="$("$here/compose.sh" ps -q "$region")"
        status="$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo missing)"
        [ "$status" = healthy ] && break
        if [ $SECONDS -ge $deadline ]; then
            echo "region $region is $status; its log:" >&2
            "$here/compose.sh" logs --tail 30 "$region" >&2
            exit 1
        fi
        sleep 1
    done
done
port=8787
for region in $regions; do
    echo "$region http://127.0.0.1:$port/client/v4"
    port=$((port + 1))
done
echo "dashboard http://127.0.0.1:8780/" >&2
