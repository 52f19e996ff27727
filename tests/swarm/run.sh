#!/usr/bin/env bash
# Docker Swarm: the five regions as a stack (deploy/swarm/stack.yml, derived from the compose
# file) on the swarm this engine belongs to (one node in CI: .ci/run makes it). Checks that
# the stack file is what deploy/swarm/generate.py makes of the compose file, deploys it with
# short delays, waits until every region is healthy, writes in wnam and reads it in apac,
# kills a region through `edgekv chaos` (found by the stack's labels) and waits for swarm to
# bring it back, runs the partition-heal chaos scenario against the stack, and removes it.
#
# Needs Docker in swarm mode, the Rust toolchain and Python 3.11 with the test virtualenv
# (scripts/test.sh makes it). Publishes 8787-8791, so the compose cluster must be down.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
out="${EDGEKV_SWARM_OUT:-$target/swarm}"
stack=edgekvswarm
regions="wnam enam weur eeur apac"
rm -rf "$out"
mkdir -p "$out"

venv="$target/test-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
"$venv/bin/python" deploy/swarm/generate.py --check

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    echo "this engine is not in swarm mode: docker swarm init" >&2
    exit 1
fi
if [ "${EDGEKV_SKIP_BUILD:-0}" != 1 ]; then
    deploy/build-image.sh
fi
host="$(rustc -vV | sed -n 's/^host: //p')"
edgekv="$target/$host/release/edgekv"

# The chaos suite's short delays, every link named.
links=""
for a in $regions; do
    for b in $regions; do
        [ "$a" = "$b" ] || links="$links${links:+;}$a->$b=uniform(200ms,1s)"
    done
done
export EDGEKV_LINK_DELAYS="$links" EDGEKV_ANTI_ENTROPY_INTERVAL=2s EDGEKV_TOMBSTONE_GRACE=20s EDGEKV_SEED=1

remove() {
    docker stack rm "$stack" >/dev/null 2>&1 || true
    for _ in $(seq 60); do
        [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] && break
        sleep 1
    done
    docker volume ls -q --filter "name=${stack}_" | xargs -r docker volume rm >/dev/null 2>&1 || true
}
trap remove EXIT
remove

healthy() {
    local region deadline=$((SECONDS + 120))
    for region in $regions; do
        until [ -n "$(docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$region" --filter health=healthy)" ]; do
            if [ $SECONDS -ge $deadline ]; then
                echo "swarm: $region is not healthy" >&2
                docker service ps --no-trunc "${stack}_$region" >&2 || true
                return 1
            fi
            sleep 1
        done
    done
}

echo "== swarm: deploy" >&2
docker stack deploy --resolve-image=never -c deploy/swarm/stack.yml "$stack" >&2
healthy
echo "every region healthy" >&2

echo "== swarm: a write in wnam is read in apac" >&2
"$venv/bin/python" - <<'PY'
import json, time, urllib.request
H = {"Authorization": "Bearer edgekv-dev-token", "Content-Type": "application/json"}
def call(port, method, path, body=None):
    url = f"http://127.0.0.1:{port}/client/v4/accounts/swarm/storage/kv/namespaces{path}"
    req = urllib.request.Request(url, data=body, headers=H, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
_, body = call(8787, "POST", "", json.dumps({"title": "swarm"}).encode())
ns = json.loads(body)["result"]["id"]
def wait(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"swarm: {what} within {timeout} s")
wait("the namespace reaches apac", lambda: call(8791, "GET", f"/{ns}")[0] == 200)
status, _ = call(8787, "PUT", f"/{ns}/values/greeting", b"hello from wnam")
assert status == 200, status
start = time.monotonic()
wait("the write reaches apac", lambda: call(8791, "GET", f"/{ns}/values/greeting") == (200, b"hello from wnam"))
print(f"read in apac {time.monotonic() - start:.2f} s after the write in wnam")
PY

echo "== swarm: edgekv chaos kill finds the task; swarm restarts it" >&2
"$edgekv" chaos --project "$stack" kill weur >&2
sleep 2
healthy
echo "weur is back" >&2

echo "== swarm: partition-heal" >&2
code=0
"$edgekv" lab run tests/chaos/scenarios/partition-heal.toml --out "$out/partition-heal" >"$out/partition-heal.log" 2>&1 || code=$?
tail -n 6 "$out/partition-heal.log" >&2
[ "$code" = 0 ] || { echo "swarm: partition-heal is not valid" >&2; exit 1; }
echo "swarm: passed" >&2
