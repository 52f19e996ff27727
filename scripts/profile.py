#!/usr/bin/env python3
"""Instruction-count profile of one request kind through the `edgekv` node, under callgrind.

Instruction counts do not depend on what else the machine runs, so this profile can be taken
on a shared machine and compared across changes (docs/performance.md). It starts
`edgekv node --in-memory` under `valgrind --tool=callgrind` with instrumentation off, creates
a namespace, warms up, then switches instrumentation on for exactly N requests of one kind
(`put` or `get`, 100-byte values, one keep-alive connection) and off again, and prints the
instructions per request and the top functions (inclusive) from callgrind_annotate.

    scripts/profile.py put 2000 [--bin target/release/edgekv] [--keep DIR]
"""

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

TOKEN = "edgekv-dev-token"
ACCOUNT = "acct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(conn, method, path, body=None):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    data = reply.read()
    if reply.status != 200:
        sys.exit(f"{method} {path}: {reply.status} {data[:200]!r}")
    return data


def callgrind(out_dir: str, command: str) -> None:
    subprocess.run(["callgrind_control", "--" + command], cwd=out_dir, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["put", "get"])
    parser.add_argument("n", type=int)
    parser.add_argument("--bin", default="target/release/edgekv")
    parser.add_argument("--keep", help="keep the callgrind output in this directory")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    out_dir = args.keep or tempfile.mkdtemp(prefix="edgekv-profile-")
    os.makedirs(out_dir, exist_ok=True)
    port, grpc, binding = free_port(), free_port(), free_port()
    out_file = os.path.join(out_dir, "callgrind.out")
    node = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
         args.bin, "node", "--region", "wnam", "--in-memory", "--listen", f"127.0.0.1:{port}",
         "--grpc-listen", f"127.0.0.1:{grpc}", "--binding-listen", f"127.0.0.1:{binding}",
         "--write-rate-limit", "off"],
        cwd=out_dir, stdout=subprocess.DEVNULL, stderr=open(os.path.join(out_dir, "node.log"), "w"))
    try:
        deadline = time.time() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("the node did not start under valgrind")
            time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        base = f"/client/v4/accounts/{ACCOUNT}/storage/kv/namespaces"
        ns = json.loads(request(conn, "POST", base, json.dumps({"title": "profile"})))["result"]["id"]
        value = b"v" * 100
        keys = [f"key-{i:06}" for i in range(args.n)]
        for key in keys[:200]:  # warm-up: connections, allocator, maps
            request(conn, "PUT", f"{base}/{ns}/values/{key}", value)
            request(conn, "GET", f"{base}/{ns}/values/{key}")
        if args.kind == "get":
            for key in keys:
                request(conn, "PUT", f"{base}/{ns}/values/{key}", value)
        callgrind(out_dir, "zero")
        callgrind(out_dir, "instr=on")
        for key in keys:
            if args.kind == "put":
                request(conn, "PUT", f"{base}/{ns}/values/{key}", value)
            else:
                request(conn, "GET", f"{base}/{ns}/values/{key}")
        callgrind(out_dir, "instr=off")
        callgrind(out_dir, "dump")
    finally:
        node.terminate()
        node.wait(timeout=120)
    dumps = sorted(f for f in os.listdir(out_dir) if f.startswith("callgrind.out"))
    dump = max((os.path.join(out_dir, f) for f in dumps), key=os.path.getsize)
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", dump],
                               capture_output=True, text=True, check=True).stdout
    total = re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", annotated)
    instructions = int(total.group(1).replace(",", "")) if total else 0
    print(f"{args.kind}: {instructions / args.n:,.0f} instructions per request ({args.n} requests)")
    rows = [line for line in annotated.splitlines() if re.match(r"\s*[\d,]+ \(", line)]
    for line in rows[1:args.top + 1]:
        print(line[:160])
    print(f"callgrind output: {dump}")


if __name__ == "__main__":
    main()
