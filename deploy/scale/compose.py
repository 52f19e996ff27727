#!/usr/bin/env python3
"""Writes a docker-compose file for N regions, for the scale benchmark (tests/benches/scale.rs).

    python3 deploy/scale/compose.py 20 > /tmp/edgekv-20.yml
    docker-compose -p edgekvscale -f /tmp/edgekv-20.yml up -d

Regions are r00..r(N-1), full mesh, durable (a volume each), every link `EDGEKV_DELAY`
(default 0s), anti-entropy every 5 s, region i's API published on 127.0.0.1:(18787+i). The
image, tokens and the rest are the five-region compose file's (deploy/docker-compose.yml).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BASE_PORT = 18787
# Absolute, since the generated file is written wherever the caller wants it.
ENV_FILE = str(Path(__file__).resolve().parent.parent / "edgekv.env")


def compose(n: int) -> dict:
    names = [f"r{i:02}" for i in range(n)]
    services = {}
    for i, name in enumerate(names):
        peers = ",".join(f"{p}=http://{p}:9787" for p in names if p != name)
        services[name] = {
            "image": "${EDGEKV_IMAGE:-edgekv:local}",
            "env_file": ENV_FILE,
            "hostname": name,
            "environment": {
                "EDGEKV_REGION": name,
                "EDGEKV_PEERS": peers,
                "EDGEKV_DELAY": "${EDGEKV_DELAY:-0s}",
                "EDGEKV_ANTI_ENTROPY_INTERVAL": "5s",
                "EDGEKV_WRITE_RATE_LIMIT": "off",
                "EDGEKV_LOG": "warn",
            },
            "ports": [f"127.0.0.1:{BASE_PORT + i}:8787"],
            "volumes": [f"{name}-data:/data"],
            "networks": ["edgekv"],
        }
    return {
        "version": "3.7",
        "services": services,
        "networks": {"edgekv": {}},
        "volumes": {f"{name}-data": {} for name in names},
    }


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or not 1 <= int(sys.argv[1]) <= 100:
        sys.exit("usage: compose.py N (1 to 100 regions)")
    # JSON is YAML: no dependency needed to write it.
    print(json.dumps(compose(int(sys.argv[1])), indent=2))
