"""Fixtures shared by the black-box Python suites: one EdgeKV node per test session.

The node is the release binary (`EDGEKV_BIN`, default `<repo>/target/release/edgekv`), started
as `edgekv cluster --regions wnam --port 0`, which binds a free port and prints a table
`REGION URL GRPC BINDING TOKEN` on stdout; the URL of the `wnam` line is the API base URL. The node accepts
only the tokens in `EDGEKV_API_TOKEN`, set here to a random test token, so tests can also present
wrong credentials. Every test gets its own account id, so tests never see each other's data.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import cloudflare
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "wnam"
STARTUP_TIMEOUT_S = 20.0

# The SDK reads credentials, the base URL and extra headers from these when they are set, and
# prefers X-Auth-Key over a bearer token: a developer's real Cloudflare settings must not leak
# into the requests these tests make.
for _name in (
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_API_KEY",
    "CLOUDFLARE_EMAIL",
    "CLOUDFLARE_API_USER_SERVICE_KEY",
    "CLOUDFLARE_BASE_URL",
    "CLOUDFLARE_CUSTOM_HEADERS",
):
    os.environ.pop(_name, None)


@dataclasses.dataclass(frozen=True)
class Node:
    """A running node: its API base URL (ending in /client/v4), origin and accepted token."""

    url: str
    origin: str
    token: str


def edgekv_bin() -> Path:
    path = Path(os.environ.get("EDGEKV_BIN") or REPO_ROOT / "target" / "release" / "edgekv")
    if not path.is_file():
        pytest.exit(
            f"edgekv binary not found at {path}: run `cargo build --release` or set EDGEKV_BIN",
            returncode=2,
        )
    return path


def _read_base_url(proc: subprocess.Popen[bytes], deadline: float) -> str:
    """Reads the cluster table from stdout until the line of REGION, and returns its URL.

    Reads the raw file descriptor rather than a buffered file object, so that select() never
    waits for lines already sitting in a Python buffer.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    output = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(fd, 4096)
            if not chunk:  # EOF: the process exited
                break
            output += chunk
            *complete_lines, _partial = output.split(b"\n")
            for line in complete_lines[1:]:  # the first line is the table header
                fields = line.decode(errors="replace").split()
                if len(fields) >= 2 and fields[0] == REGION:
                    return fields[1]
    raise RuntimeError(
        f"edgekv printed no URL for region {REGION} (exit code {proc.poll()}); stdout was:\n"
        + output.decode(errors="replace")
    )


def _wait_healthy(origin: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Polls GET /healthz until it answers 200, the process dies, or the deadline passes."""
    last_error: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edgekv exited with code {proc.returncode} during startup")
        try:
            with urllib.request.urlopen(f"{origin}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"status {response.status}"
        except (urllib.error.URLError, OSError) as err:
            last_error = err
        time.sleep(0.05)
    raise RuntimeError(f"edgekv did not become healthy at {origin}/healthz: {last_error}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _start_node(extra_args: list[str]) -> Iterator[Node]:
    """Runs one node with `extra_args` until the generator is closed."""
    token = f"edgekv-test-{uuid.uuid4().hex}"
    # Only the settings given here: an EDGEKV_CONFIG or EDGEKV_HOST of the caller's shell must not
    # change the node under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKV_")}
    env.update(EDGEKV_API_TOKEN=token, EDGEKV_LOG="warn")
    # Logs go to a file, never to an undrained pipe that could fill up and stall the node.
    # The default durable store (fsync mode), in a directory of its own.
    with tempfile.TemporaryFile(mode="w+", prefix="edgekv-stderr-") as stderr, \
            tempfile.TemporaryDirectory(prefix="edgekv-data-") as data_dir:
        proc = subprocess.Popen(
            [str(edgekv_bin()), "cluster", "--regions", REGION, "--port", "0",
             "--data-dir", data_dir, *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            try:
                url = _read_base_url(proc, deadline)
                origin = url.removesuffix("/client/v4")
                assert origin != url, f"unexpected base URL {url!r}"
                _wait_healthy(origin, proc, deadline)
            except Exception as err:
                _stop(proc)
                stderr.seek(0)
                raise RuntimeError(f"{err}\nedgekv's stderr:\n{stderr.read()}") from err
            yield Node(url=url, origin=origin, token=token)
        finally:
            _stop(proc)


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    """Starts one node for the whole session and stops it at the end; or, with
    `EDGEKV_TEST_URL` (and `EDGEKV_TEST_TOKEN`) set, uses that running region instead (the chaos
    suite points the SDK tests at a region of the compose cluster).

    The suites rewrite keys at once, far faster than Workers KV's one write per second per key,
    to check what the API answers, not how fast a key may change: this node runs without that
    limit (`--write-rate-limit off`), and `limited_node` has it."""
    external = os.environ.get("EDGEKV_TEST_URL")
    if external:
        url = external.rstrip("/")
        yield Node(url=url, origin=url.removesuffix("/client/v4"),
                   token=os.environ.get("EDGEKV_TEST_TOKEN", "edgekv-dev-token"))
        return
    yield from _start_node(["--write-rate-limit", "off"])


@pytest.fixture(scope="session")
def limited_node() -> Iterator[Node]:
    """A node with Workers KV's defaults, the write rate limit included."""
    if os.environ.get("EDGEKV_TEST_URL"):
        pytest.skip("needs a node of its own, started with its defaults")
    yield from _start_node([])


@pytest.fixture
def account_id() -> str:
    """A fresh account per test: namespaces of one account are invisible to every other."""
    return uuid.uuid4().hex


@pytest.fixture
def client(node: Node) -> Iterator[cloudflare.Cloudflare]:
    """The official SDK pointed at the node. No retries: a failure must show on the first try."""
    with cloudflare.Cloudflare(base_url=node.url, api_token=node.token, max_retries=0) as c:
        yield c


@pytest.fixture
def namespace_id(client: cloudflare.Cloudflare, account_id: str) -> str:
    """A fresh, empty namespace in the test's account."""
    created = client.kv.namespaces.create(account_id=account_id, title=f"ns-{uuid.uuid4().hex}")
    assert created is not None
    return created.id
