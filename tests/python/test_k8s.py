"""The Kubernetes manifests of deploy/k8s, checked offline: they are what deploy/k8s/generate.py
makes of the compose file today, every resource is valid against the Kubernetes 1.30 schemas
(strict: no unknown field), and regions, peers, ports, settings and probes agree with
deploy/docker-compose.yml. No cluster is needed; kubernetes-validate carries the schemas.
"""

from __future__ import annotations

import subprocess
import sys
from itertools import combinations
from pathlib import Path

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
COMPOSE = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
KUBERNETES = "1.30.0"


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def base_docs() -> list[dict]:
    return [d for f in sorted(BASE.glob("*.yaml")) if f.name != "kustomization.yaml" for d in docs(f)]


def compose_regions() -> dict[str, dict]:
    return {n: s for n, s in COMPOSE["services"].items() if "EDGEKV_REGION" in s.get("environment", {})}


def of_kind(kind: str) -> list[dict]:
    return [d for d in base_docs() if d["kind"] == kind]


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_the_manifests_are_generated_from_the_compose_file() -> None:
    run = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_every_resource_is_valid_against_the_kubernetes_schemas() -> None:
    resources = base_docs()
    assert len(resources) >= 4 + 3 * len(compose_regions())
    for doc in resources:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    (kustomization,) = docs(BASE / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {f.name for f in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_regions_peers_ports_and_probes_agree_with_compose() -> None:
    regions = compose_regions()
    statefulsets = {s["metadata"]["name"]: s for s in of_kind("StatefulSet")}
    assert set(statefulsets) == set(regions)
    for name, service in regions.items():
        (container,) = statefulsets[name]["spec"]["template"]["spec"]["containers"]
        variables = env(container)
        assert variables["EDGEKV_REGION"] == name
        peers = dict(p.split("=", 1) for p in variables["EDGEKV_PEERS"].split(","))
        compose_peers = dict(p.split("=", 1) for p in service["environment"]["EDGEKV_PEERS"].split(","))
        assert set(peers) == set(compose_peers), name
        for peer, url in peers.items():
            assert url == f"http://{peer}-0.{peer}.edgekv.svc.cluster.local:9787"
            assert compose_peers[peer].endswith(":9787")
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": 8787, "grpc": 9787, "binding": 10787, "admin": 8788}
        assert variables["EDGEKV_ADMIN_LISTEN"] == "0.0.0.0:8788"
        published = {p.split(":")[-1] for p in service["ports"]}
        assert published == {"8787", "10787"}, "compose publishes the API and the binding"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"]["memory"]
        assert statefulsets[name]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    headless = {s["metadata"]["name"] for s in of_kind("Service") if s["spec"].get("clusterIP") == "None"}
    assert headless == set(regions), "a headless Service per region for gRPC peering"


def test_every_compose_setting_is_in_the_config_map() -> None:
    (settings,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "edgekv-settings"]
    assert set(settings["data"]) == set(COMPOSE["x-settings"])
    assert settings["data"]["EDGEKV_LINK_DELAYS"].count("->") == 20
    (secret,) = of_kind("Secret")
    assert set(secret["stringData"]) == {"EDGEKV_API_TOKEN", "EDGEKV_ADMIN_TOKEN", "EDGEKV_CLUSTER_SECRET"}


def test_grpc_and_the_admin_api_are_reachable_only_from_inside_the_namespace() -> None:
    (policy,) = of_kind("NetworkPolicy")
    rules = policy["spec"]["ingress"]
    for private in (9787, 8788):
        rule = [r for r in rules if any(p["port"] == private for p in r["ports"])]
        assert len(rule) == 1 and rule[0]["from"] == [{"podSelector": {}}], private
    open_ports = {p["port"] for r in rules if "from" not in r for p in r["ports"]}
    assert open_ports == {8787, 10787}


def test_a_chaos_mesh_partition_for_every_region_pair() -> None:
    chaos = docs(K8S / "chaos" / "partitions.yaml")
    regions = sorted(compose_regions())
    pairs = {
        tuple(sorted((c["spec"]["selector"]["labelSelectors"]["edgekv.dev/region"],
                      c["spec"]["target"]["selector"]["labelSelectors"]["edgekv.dev/region"])))
        for c in chaos
    }
    assert pairs == set(combinations(regions, 2))
    assert all(c["kind"] == "NetworkChaos" and c["spec"]["action"] == "partition" for c in chaos)
