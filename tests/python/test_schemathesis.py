"""Schemathesis against the Workers KV OpenAPI contract.

The spec is `../shared/cloudflare-kv-openapi.json` relative to the repository (CI clones the
repository beside `shared/`), or the file named by `EDGEKV_OPENAPI`. Known errata of that spec,
which make a correct server fail, are patched in a temporary copy; each patch below says why,
and `test_each_patch_is_needed_by_a_correct_response` shows with real answers of the node that
each one is needed. Nothing that a correct Workers KV server would fail is patched away.

The run goes through the `st run` CLI (in a subprocess, so its threads, signal handling and
Hypothesis database stay out of pytest), with a fixed seed and a bounded number of examples,
and this test fails if schemathesis reports any failure or error. To reach the key endpoints,
schemathesis' parameter dictionaries substitute a real account and namespace for the random ones
in most generated requests.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cloudflare
import httpx
import pytest
import schemathesis

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = REPO_ROOT / ".." / "shared" / "cloudflare-kv-openapi.json"

SEED = 20240807
MAX_EXAMPLES = 100
CHECKS = [
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
]
RUN_TIMEOUT_S = 300

SCHEMAS = "#/components/schemas/"
FAILURE_ENVELOPE = {"$ref": SCHEMAS + "workers-kv_api-response-common-failure"}

NS_PATH = "/accounts/{account_id}/storage/kv/namespaces/{namespace_id}"


def spec_path() -> Path:
    path = Path(os.environ.get("EDGEKV_OPENAPI") or DEFAULT_SPEC)
    if not path.is_file():
        pytest.fail(
            f"OpenAPI spec not found at {path}: check out shared/ beside the repository "
            "or set EDGEKV_OPENAPI"
        )
    return path


BULK_WRITE_AND_DELETES = [
    (NS_PATH + "/bulk", "put"),
    (NS_PATH + "/bulk", "delete"),
    (NS_PATH + "/bulk/delete", "post"),
]


def erratum_a_bulk_failures(spec: dict[str, Any]) -> None:
    """(a) The 4XX responses of bulk write and of both bulk deletes reuse the *success* schema.

    They are `success: enum [true]` with a bulk-result object as `result`, so no failure can
    conform, while every other operation's 4XX is the common failure envelope, which is what
    Cloudflare sends for every failure (kv-api.md §1: success false, errors non-empty, result
    null). Use the common failure envelope here too.
    """
    for path, method in BULK_WRITE_AND_DELETES:
        content = spec["paths"][path][method]["responses"]["4XX"]["content"]["application/json"]
        first = content["schema"]["allOf"][0]["$ref"]
        assert first.endswith("api-response-common-no-result"), f"(a) gone from {method} {path}"
        content["schema"] = FAILURE_ENVELOPE


def erratum_b_bulk_get_null(spec: dict[str, Any]) -> None:
    """(b) The plain bulk get result forgot `nullable` on its values.

    Bulk get answers `null` for a key that does not exist (kv-api.md §2 #14 and §7); the
    with-metadata variant allows it, the plain one does not. Cloudflare's own local simulator
    (miniflare) patches the same spot.
    """
    values = spec["components"]["schemas"]["workers-kv_bulk-get-result"]["properties"]["values"]
    assert "nullable" not in values["additionalProperties"], "(b) gone"
    values["additionalProperties"]["nullable"] = True


def erratum_c_bulk_get_one_of(spec: dict[str, Any]) -> None:
    """(c) The bulk get result is `oneOf` two shapes that are not exclusive.

    A plain result's value may be any object, so every with-metadata result ({"value": ...,
    "metadata": ...} per key) also matches the plain shape, and once (b) lets a plain value be
    null, a result whose keys are all missing matches both: `oneOf` rejects every such answer.
    `anyOf` says what the spec means: the result has one of the two shapes.
    """
    response = spec["paths"][NS_PATH + "/bulk/get"]["post"]["responses"]["200"]
    result = response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["result"]
    assert "oneOf" in result, "(c) gone"
    result["anyOf"] = result.pop("oneOf")


ERRATA = {
    "a": erratum_a_bulk_failures,
    "b": erratum_b_bulk_get_null,
    "c": erratum_c_bulk_get_one_of,
}


def patch_spec(spec: dict[str, Any], errata=ERRATA) -> dict[str, Any]:
    """A copy of the spec with the given errata fixed; each fix asserts its erratum is there."""
    spec = copy.deepcopy(spec)
    for fix in errata.values():
        fix(spec)
    return spec


def test_each_patch_is_needed_by_a_correct_response(node):
    """Real answers of the node that kv-api.md documents, which the spec wrongly rejects.

    Each one is valid against the fully patched spec and invalid as soon as the patch for its
    erratum is left out: none of the patches is superfluous.
    """
    headers = {"Authorization": f"Bearer {node.token}"}
    account = uuid.uuid4().hex
    created = httpx.post(
        f"{node.url}/accounts/{account}/storage/kv/namespaces", json={"title": "t"}, headers=headers
    )
    base = f"{node.url}/accounts/{account}/storage/kv/namespaces/{created.json()['result']['id']}"
    assert httpx.put(f"{base}/values/present", content=b"v", headers=headers).status_code == 200

    def bulk_get(body):
        return httpx.post(f"{base}/bulk/get", json=body, headers=headers)

    bad_key = [{"key": "", "value": "v"}]
    responses = {
        # (a) a refused bulk write or delete: 400 with the failure envelope.
        "a": [
            ((NS_PATH + "/bulk", "PUT"), httpx.put(f"{base}/bulk", json=bad_key, headers=headers)),
            (
                (NS_PATH + "/bulk", "DELETE"),
                httpx.request("DELETE", f"{base}/bulk", json=[""], headers=headers),
            ),
            (
                (NS_PATH + "/bulk/delete", "POST"),
                httpx.post(f"{base}/bulk/delete", json=[""], headers=headers),
            ),
        ],
        # (b) text values with a missing key: {"present": "v", "missing": null}.
        "b": [((NS_PATH + "/bulk/get", "POST"), bulk_get({"keys": ["present", "missing"]}))],
        # (c) any with-metadata result: {"present": {"value": "v", "metadata": null}}.
        "c": [
            ((NS_PATH + "/bulk/get", "POST"), bulk_get({"keys": ["present"], "withMetadata": True}))
        ],
    }
    original = json.loads(spec_path().read_text())
    patched = schemathesis.openapi.from_dict(patch_spec(original))
    for erratum, cases in responses.items():
        without = {name: fix for name, fix in ERRATA.items() if name != erratum}
        unpatched = schemathesis.openapi.from_dict(patch_spec(original, without))
        for (path, method), response in cases:
            assert response.status_code in (200, 400), response.text
            assert patched[path][method].is_valid_response(response), (erratum, response.text)
            assert not unpatched[path][method].is_valid_response(response), (
                f"the patch for erratum ({erratum}) is not needed for {method} {path}: "
                + response.text
            )


def test_patches_touch_only_the_errata():
    original = json.loads(spec_path().read_text())
    patched = patch_spec(original)
    changed = [
        (path, method)
        for path, ops in original["paths"].items()
        for method, op in ops.items()
        if op != patched["paths"][path][method]
    ]
    assert sorted(changed) == sorted(
        [
            (NS_PATH + "/bulk", "put"),
            (NS_PATH + "/bulk", "delete"),
            (NS_PATH + "/bulk/delete", "post"),
            (NS_PATH + "/bulk/get", "post"),
        ]
    )
    changed_schemas = [
        name
        for name, schema in original["components"]["schemas"].items()
        if schema != patched["components"]["schemas"][name]
    ]
    assert changed_schemas == ["workers-kv_bulk-get-result"]


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid TOML basic string


def write_config(path: Path, account_id: str, namespaces: list[str], victims: list[str]) -> None:
    """Schemathesis config: most generated requests use a real account and namespace.

    The delete-namespace operation gets its own namespaces to delete, so that it cannot take
    away the namespace the key operations are exercised on.
    """
    path.write_text(
        f"""
[dictionaries.account]
values = [{toml_string(account_id)}]

[dictionaries.namespace]
values = [{", ".join(map(toml_string, namespaces))}]

[dictionaries.victim]
values = [{", ".join(map(toml_string, victims))}]

[parameters]
"path.account_id" = {{ dictionary = "account", probability = 0.9 }}
"path.namespace_id" = {{ dictionary = "namespace", probability = 0.9 }}

[[operations]]
include-operation-id = "workers-kv-namespace-remove-a-namespace"
parameters = {{ "path.namespace_id" = {{ dictionary = "victim", probability = 0.9 }} }}
"""
    )


@pytest.fixture
def seeded(node) -> dict[str, Any]:
    """A real account with namespaces and keys, including the spec's example key `My-Key`."""
    account_id = uuid.uuid4().hex
    with cloudflare.Cloudflare(base_url=node.url, api_token=node.token, max_retries=0) as client:
        kv = client.kv.namespaces

        def create(title: str) -> str:
            return kv.create(account_id=account_id, title=title).id

        namespaces = [create("schemathesis-main"), create("schemathesis-second")]
        victims = [create(f"schemathesis-victim-{i}") for i in range(3)]
        for ns in namespaces:
            kv.bulk_update(
                ns,
                account_id=account_id,
                body=[
                    {
                        "key": "My-Key",
                        "value": '{"json": true}',
                        "metadata": {"someMetadataKey": 1},
                    },
                    {"key": "key1", "value": "value1"},
                    {"key": "plain", "value": "not json", "expiration_ttl": 3600},
                ],
            )
    return {"account_id": account_id, "namespaces": namespaces, "victims": victims}


def run_schemathesis(
    node, spec_file: Path, config_file: Path, workdir: Path
) -> subprocess.CompletedProcess:
    har = workdir / "requests.har"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config_file),
        "run",
        str(spec_file),
        "--url",
        node.url,
        "--header",
        f"Authorization: Bearer {node.token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # One worker: the run is deterministic for a seed, and CPython 3.11 has been seen to
        # crash schemathesis' coverage phase with concurrent workers ("AST constructor
        # recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        # The secret is the test token of a throwaway node; showing requests in full makes
        # failures reproducible from the log.
        "--output-sanitize",
        "false",
    ]
    return subprocess.run(
        command,
        cwd=workdir,  # schemathesis and Hypothesis write their files here, not in the repo
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env={**os.environ, "NO_COLOR": "1"},
    )


def statuses_by_route(har_file: Path, account_id: str, namespaces: list[str]) -> dict[tuple, list]:
    """Statuses of the requests that reached one of `namespaces`, by (method, route).

    The route is what follows the namespace id: "" (the namespace itself), "keys", "values",
    "metadata", "bulk", "bulk/get" or "bulk/delete".
    """
    prefix = f"/client/v4/accounts/{account_id}/storage/kv/namespaces/"
    out: dict[tuple, list] = {}
    for entry in json.loads(har_file.read_text())["log"]["entries"]:
        path = urlsplit(entry["request"]["url"]).path
        if not path.startswith(prefix):
            continue
        namespace, _, rest = path.removeprefix(prefix).partition("/")
        if namespace not in namespaces:
            continue
        parts = rest.split("/")
        route = "/".join(parts[:2]) if parts[0] == "bulk" else parts[0]
        out.setdefault((entry["request"]["method"], route), []).append(entry["response"]["status"])
    return out


def test_schemathesis_finds_no_failures(node, seeded, tmp_path):
    spec_file = tmp_path / "cloudflare-kv-openapi.patched.json"
    spec_file.write_text(json.dumps(patch_spec(json.loads(spec_path().read_text()))))
    config_file = tmp_path / "schemathesis.toml"
    write_config(config_file, seeded["account_id"], seeded["namespaces"], seeded["victims"])

    result = run_schemathesis(node, spec_file, config_file, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis reported failures:\n{output}"
    assert "Tested: 14" in output, output

    # The run must have reached real data, not only 404s: every key operation answered 200 on
    # the seeded namespaces at least once.
    har = tmp_path / "requests.har"
    reached = statuses_by_route(har, seeded["account_id"], seeded["namespaces"])
    ok = {op for op, statuses in reached.items() if 200 in statuses}
    expected = {
        ("GET", ""),
        ("PUT", ""),
        ("GET", "keys"),
        ("GET", "values"),
        ("PUT", "values"),
        ("DELETE", "values"),
        ("GET", "metadata"),
        ("PUT", "bulk"),
        ("DELETE", "bulk"),
        ("POST", "bulk/delete"),
        ("POST", "bulk/get"),
    }
    assert expected <= ok, f"operations never answered 200 on a real namespace: {expected - ok}"
    deleted = statuses_by_route(har, seeded["account_id"], seeded["victims"])
    assert 200 in deleted.get(("DELETE", ""), []), "no namespace was ever deleted"
