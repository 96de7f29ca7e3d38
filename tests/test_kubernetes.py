"""deploy/kubernetes (issue 15): the manifests validate against the Kubernetes schemas (strict:
an unknown or misspelt field fails), and what a reviewer would check by hand holds: probes,
resources, the security context, the settings, and the pieces naming each other correctly."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from conftest import ROOT

from cds_service.auth import load_trusted_issuers
from cds_service.cli import SERVER_VARIABLES
from cds_service.config import ENV_PREFIX, Settings, load_settings

DEPLOY = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release still supported upstream when this was written, and the newest
# the validator knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


DOCUMENTS = _documents()
KUSTOMIZATION = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def _one(kind: str) -> dict[str, Any]:
    [manifest] = [doc for _, doc in DOCUMENTS if doc["kind"] == kind]
    return manifest


DEPLOYMENT = _one("Deployment")
POD = DEPLOYMENT["spec"]["template"]["spec"]
[CONTAINER] = POD["containers"]
POD_LABELS = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
CONFIG = _one("ConfigMap")["data"]
SECRETS = _one("Secret")["stringData"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path_doc", DOCUMENTS, ids=[f"{p.name}:{d['kind']}" for p, d in DOCUMENTS])
def test_each_manifest_validates_against_the_kubernetes_schema(
    path_doc: tuple[Path, dict[str, Any]], version: str
) -> None:
    _, doc = path_doc
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    """The control: strict validation catches what kubectl would refuse (or silently drop)."""
    broken = copy.deepcopy(DEPLOYMENT)
    probe = broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["periodSecond"] = probe.pop("periodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_the_kustomization_lists_every_manifest_and_the_required_kinds_are_there() -> None:
    listed = set(KUSTOMIZATION["resources"])
    on_disk = {path.name for path, _ in DOCUMENTS}
    assert listed == on_disk
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert kinds >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert not kinds & {"StatefulSet"}, "PostgreSQL and Redis are the site's own"
    [image] = KUSTOMIZATION["images"]
    assert image["name"] == CONTAINER["image"]


def test_probes_liveness_healthz_readiness_readyz_on_the_served_port() -> None:
    ports = {port["name"]: port["containerPort"] for port in CONTAINER["ports"]}
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        check = CONTAINER[probe]["httpGet"]
        assert check["path"] == path, probe
        assert check["port"] in ports, probe
    assert ports[CONTAINER["ports"][0]["name"]] == _served_port()
    # a liveness probe that waits longer than gunicorn's worker timeout would never fire first
    live = CONTAINER["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] <= 30


def _served_port() -> int:
    args = CONTAINER["args"]
    return int(args[args.index("--port") + 1])


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match[1]) * units[match[2]]


def test_requests_and_limits_are_set_and_limits_hold_the_requests() -> None:
    resources = CONTAINER["resources"]
    for kind in ("cpu", "memory"):
        request = _quantity(resources["requests"][kind])
        limit = _quantity(resources["limits"][kind])
        assert 0 < request <= limit, kind
    # a core per gunicorn worker
    assert _quantity(resources["requests"]["cpu"]) >= int(CONFIG["IVIG_CDS_WORKERS"])


def test_non_root_read_only_root_no_privileges_and_writable_paths_mounted() -> None:
    pod, container = POD["securityContext"], CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] is True and container["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^USER {pod['runAsUser']}$", dockerfile, re.MULTILINE)
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert POD["automountServiceAccountToken"] is False
    # With a read-only root, what the service writes must be on a volume.
    mounts = {mount["mountPath"] for mount in CONTAINER["volumeMounts"]}
    spool = Path(CONFIG["IVIG_CDS_AUDIT_SPOOL_DIR"])
    assert any(spool.is_relative_to(mount) for mount in mounts), spool
    assert "/tmp" in mounts  # gunicorn's worker heartbeat files
    volumes = {volume["name"] for volume in POD["volumes"]}
    assert {mount["name"] for mount in CONTAINER["volumeMounts"]} <= volumes


def test_the_pod_stops_within_its_grace_period() -> None:
    """gunicorn's graceful timeout must hold a call in flight, an idle keep-alive connection
    running out and the last flush of the order-select memory and of the audit writer (at most
    5 s each): the master kills the workers after it. Kubernetes kills the pod after the preStop
    pause plus that."""
    pause = int(CONTAINER["lifecycle"]["preStop"]["exec"]["command"][-1])
    graceful = int(CONFIG["IVIG_CDS_GRACEFUL_TIMEOUT_S"])
    keepalive = int(CONFIG.get("IVIG_CDS_KEEPALIVE_S", SERVER_VARIABLES["IVIG_CDS_KEEPALIVE_S"]))
    settings = load_settings(Settings, CONFIG | SECRETS, {})
    assert graceful >= settings.request_budget_s + keepalive + 5 + 5
    assert POD["terminationGracePeriodSeconds"] >= pause + graceful + 5
    assert 0 < pause <= 10
    strategy = DEPLOYMENT["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0  # a roll never takes an answering pod away first
    assert "replicas" not in DEPLOYMENT["spec"], "the autoscaler sets them"


def test_every_setting_named_is_one_the_service_reads_and_they_validate() -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    for name in (*CONFIG, *SECRETS):
        assert name in fields or name in SERVER_VARIABLES, f"{name}: no such setting"
    assert not set(CONFIG) & set(SECRETS)
    assert {"IVIG_CDS_DATABASE_URL", "IVIG_CDS_REDIS_URL"} <= set(SECRETS), "secrets in the Secret"
    assert not {"IVIG_CDS_DATABASE_URL", "IVIG_CDS_REDIS_URL"} & set(CONFIG)
    settings = load_settings(Settings, CONFIG | SECRETS, {})  # raises ConfigError if not
    assert settings.database_url.startswith("postgresql"), "feedback and memory shared by pods"
    assert settings.redis_url, "the JWT replay cache shared by pods"
    assert settings.auth == "jwt"
    issuers = load_trusted_issuers(settings.trusted_issuers)  # raises ConfigError if not
    for issuer in issuers.values():
        assert set(issuer.fhir_servers) <= set(settings.allowed_fhir_servers), issuer.iss
    names = {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in CONTAINER["envFrom"]}
    assert names == {_one("ConfigMap")["metadata"]["name"], _one("Secret")["metadata"]["name"]}


def test_service_hpa_and_pdb_select_the_deployments_pods() -> None:
    labels = POD_LABELS
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _one("Service")["spec"]
    assert service["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["ports"]} <= {
        port["name"] for port in CONTAINER["ports"]
    }
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    hpa = _one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    assert hpa["minReplicas"] >= 2, "one pod may stop while another answers"
    assert pdb["maxUnavailable"] < hpa["minReplicas"]


def test_the_network_policy_allows_egress_only_to_dns_database_redis_and_fhir() -> None:
    policy = _one("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= POD_LABELS.items()
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    allowed = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    settings = load_settings(Settings, CONFIG | SECRETS, {})
    needed = {53, _port(settings.database_url, 5432), _port(settings.redis_url, 6379)}
    needed |= {_port(server, 443) for server in settings.allowed_fhir_servers}
    for issuer in load_trusted_issuers(settings.trusted_issuers).values():
        needed |= {_port(url, 443) for url in issuer.key_urls}
    assert allowed == needed
    for rule in policy["egress"]:
        assert rule.get("to"), "every egress rule names where to (an empty one allows all)"
    [ingress] = policy["ingress"]
    assert [port["port"] for port in ingress["ports"]] == [_served_port()]


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default
