#!/usr/bin/env bash
# The chaos suite: the five-region compose cluster with short delays, each scenario in
# tests/chaos/scenarios run by `edgekv lab run` (which ends with the checker), then Cloudflare's
# Python SDK against one region. Prints a table and fails if any verdict is not valid.
#
# Needs Docker with Compose, the Rust toolchain and Python 3.11 (scripts/test.sh has made the
# virtualenv when run before; otherwise this makes it). Takes about ten minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
out="${EDGEKV_CHAOS_OUT:-$target/chaos}"
rm -rf "$out"
mkdir -p "$out"

# Short delays and grace periods, so faults and their repair fit in seconds. Every link is
# named, since the compose file's default names all twenty.
links=""
for a in wnam enam weur eeur apac; do
    for b in wnam enam weur eeur apac; do
        [ "$a" = "$b" ] || links="$links${links:+;}$a->$b=uniform(200ms,1s)"
    done
done
export EDGEKV_LINK_DELAYS="$links"
export EDGEKV_ANTI_ENTROPY_INTERVAL=2s
export EDGEKV_TOMBSTONE_GRACE=20s
export EDGEKV_SEED=1

cleanup() { deploy/down.sh >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
deploy/up.sh
host="$(rustc -vV | sed -n 's/^host: //p')"
edgekv="$target/$host/release/edgekv"   # the static binary up.sh built

failed=0
for scenario in tests/chaos/scenarios/*.toml; do
    name="$(basename "$scenario" .toml)"
    echo "== $name" >&2
    code=0
    "$edgekv" lab run "$scenario" --out "$out/$name" >"$out/$name.log" 2>&1 || code=$?
    grep -v '^anomaly:' "$out/$name.log" | tail -n 8 >&2 || true
    # What an invalid verdict saw, so that a failure in CI can be read without the run's files.
    grep '^anomaly:' "$out/$name.log" >&2 || true
    [ "$code" = 0 ] || failed=1
    # The next scenario starts from a healthy cluster, with nothing left in force.
    EDGEKV_SKIP_BUILD=1 deploy/up.sh >/dev/null
    "$edgekv" chaos heal >/dev/null
done

echo "== edgekv chaos on the command line" >&2
chaos_cli=0
{
    "$edgekv" chaos isolate wnam | grep -q '"kind":"partition"' &&
    [ "$("$edgekv" chaos status | grep -c '"kind":"partition"')" = 5 ] &&
    "$edgekv" chaos one-way enam apac | grep -q 'in force' &&
    "$edgekv" chaos heal | grep -q 'healed: 10 faults removed' &&
    [ "$("$edgekv" chaos status | grep -c '{"faults":\[\]}')" = 5 ] &&
    "$edgekv" chaos freeze apac && [ "$(docker inspect -f '{{.State.Paused}}' "$(deploy/compose.sh ps -q apac)")" = true ] &&
    "$edgekv" chaos unfreeze apac &&
    ! "$edgekv" chaos kill mars 2>/dev/null &&
    # The compose file's dashboard is up beside the regions.
    "$edgekv" probe http://127.0.0.1:8780/
} >"$out/chaos-cli.log" 2>&1 || chaos_cli=1
"$edgekv" chaos unfreeze apac >/dev/null 2>&1 || true

# Membership across containers: apac drains and leaves, is wiped (a removed region returns
# only with a new store), joins again at its network name and fills up by anti-entropy.
{
    [ "$chaos_cli" = 0 ] &&
    "$edgekv" chaos leave apac --timeout 30s | tee /dev/stderr | grep -q 'apac: drained' &&
    "$edgekv" chaos members | grep -q '^wnam: .*apac (removed)' &&
    "$edgekv" chaos wipe apac &&
    "$edgekv" chaos join apac http://apac:9787 | grep -c 'apac joined' | grep -qx 4 &&
    python3 - <<'PY'
import json, time, urllib.request
def call(port, method, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                     headers={"Authorization": "Bearer edgekv-dev-token"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return 0, b""
base = "/client/v4/accounts/chaos/storage/kv/namespaces"
_, created = call(8787, "POST", base, json.dumps({"title": f"rejoin-{time.time()}"}).encode())
ns = json.loads(created)["result"]["id"]
status, _ = call(8787, "PUT", f"{base}/{ns}/values/after-rejoin", b"back")
assert status == 200, status
deadline = time.time() + 60
while call(8791, "GET", f"{base}/{ns}/values/after-rejoin") != (200, b"back"):
    assert time.time() < deadline, "the rejoined apac never got the write"
    time.sleep(0.5)
PY
} >>"$out/chaos-cli.log" 2>&1 || chaos_cli=1
[ "$chaos_cli" = 0 ] && echo "chaos commands: ok" >&2 || { echo "chaos commands: FAILED" >&2; cat "$out/chaos-cli.log" >&2; }
"$edgekv" chaos heal >/dev/null 2>&1 || true
"$edgekv" chaos unfreeze apac >/dev/null 2>&1 || true

echo "== Python SDK against wnam" >&2
# The SDK suite rewrites keys at once to check what the API answers; the cluster runs it
# without Workers KV's one write per second per key (its own test starts a node that has it).
EDGEKV_WRITE_RATE_LIMIT=off EDGEKV_SKIP_BUILD=1 deploy/up.sh >/dev/null
venv="$target/test-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
sdk=0
EDGEKV_TEST_URL=http://127.0.0.1:8787/client/v4 EDGEKV_TEST_TOKEN=edgekv-dev-token \
    "$venv/bin/python" -m pytest tests/python/test_sdk.py -q >"$out/sdk.log" 2>&1 || sdk=$?
tail -n 3 "$out/sdk.log" >&2

python3 - "$out" "$sdk" "$chaos_cli" <<'PY'
import json, pathlib, sys
out, sdk, cli = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = [("scenario", "operations", "faults", "convergence", "verdict")]
for run in sorted(p for p in out.iterdir() if p.is_dir()):
    try:
        s = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        rows.append((run.name, "-", "-", "-", "no summary (see the log)"))
        continue
    ops = sum(r["total"]["ops"] for r in s["availability"] if r["region"] == "all")
    heals = [c["convergence_ms"] for c in s["convergence"]]
    # A restarted region's apply log restarts too: convergence is then not measurable from
    # apply events (the final reads still judge it).
    unmeasured = "unmeasured (apply log restarted)" if s["run"]["applies_missed"] else "never"
    conv = "-" if not heals else ", ".join(unmeasured if c is None else f"{c / 1000:.1f} s" for c in heals)
    rows.append((run.name, str(ops), str(len({f.get("id") for f in s["faults"]})), conv, s["check"]["validity"]))
rows.append(("edgekv chaos commands, dashboard", "-", "-", "-", "passed" if cli == 0 else "FAILED"))
rows.append(("python sdk (wnam)", "-", "-", "-", "passed" if sdk == 0 else "FAILED"))
widths = [max(len(r[i]) for r in rows) for i in range(5)]
for r in rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
PY
[ "$failed" = 0 ] && [ "$sdk" = 0 ] && [ "$chaos_cli" = 0 ]
