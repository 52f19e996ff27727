"""Fixtures shared by the black-box Python suites: one EdgeKV node per test session.

The node is the release binary (`EDGEKV_BIN`, default `<repo>/target/release/edgekv`), started
as `edgekv cluster --regions wnam --port 0`, which binds a free port and prints a table
`REGION URL TOKEN` on stdout; the URL of the `wnam` line is the API base URL. The node accepts
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
from pathlib import Path
from typing import Iterator

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


def _read_base_url(proc: subprocess.Popen[str], deadline: float) -> str:
    """Reads the cluster table from stdout until the line of REGION, and returns its URL."""
    assert proc.stdout is not None
    seen: list[str] = []
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:  # EOF: the process exited
                break
            seen.append(line)
            fields = line.split()
            if len(fields) >= 2 and fields[0] == REGION:
                return fields[1]
    raise RuntimeError(
        f"edgekv printed no URL for region {REGION} (exit code {proc.poll()}); stdout was:\n"
        + "".join(seen)
    )


def _wait_healthy(origin: str, proc: subprocess.Popen[str], deadline: float) -> None:
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


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    """Starts one node for the whole session and stops it at the end."""
    token = f"edgekv-test-{uuid.uuid4().hex}"
    env = {**os.environ, "EDGEKV_API_TOKEN": token, "EDGEKV_LOG": "warn"}
    # Logs go to a file, never to an undrained pipe that could fill up and stall the node.
    with tempfile.TemporaryFile(mode="w+", prefix="edgekv-stderr-") as stderr:
        proc = subprocess.Popen(
            [str(edgekv_bin()), "cluster", "--regions", REGION, "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            try:
                url = _read_base_url(proc, deadline)
                origin = url.removesuffix("/client/v4")
                assert origin != url, f"unexpected base URL {url!r}"
                _wait_healthy(origin, proc, deadline)
            except Exception:
                _stop(proc)
                stderr.seek(0)
                raise RuntimeError(f"edgekv failed to start; its stderr:\n{stderr.read()}")
            yield Node(url=url, origin=origin, token=token)
        finally:
            _stop(proc)


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
