"""docker-compose.yml: the HAPI FHIR stack is well formed (no Docker engine runs here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_stack_has_the_service_hapi_postgres_redis_and_a_loader() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"proxy", "ivig-cds", "hapi", "postgres", "redis", "fixtures"}
    assert services["hapi"]["image"].startswith("hapiproject/hapi:")
    loader = services["fixtures"]["command"]
    assert loader[:3] == ["ivig-cds", "fixtures", "load"] and "--wait" in loader
    assert services["fixtures"]["restart"] == "no"
    env = services["ivig-cds"]["environment"]
    assert "http://hapi:8080/fhir" in env["IVIG_CDS_ALLOWED_FHIR_SERVERS"].split(",")
    assert env["IVIG_CDS_REDIS_URL"].startswith("redis://redis:")


def test_only_the_proxy_publishes_the_service() -> None:
    """Issue 12: the server was published directly; now nginx (nginx/ivig-cds.conf) is in front."""
    services = COMPOSE["services"]
    assert "ports" not in services["ivig-cds"]
    assert services["proxy"]["ports"] == ["8080:8080"]
    mounts = services["proxy"]["volumes"]
    assert "./nginx/ivig-cds.conf:/etc/nginx/conf.d/default.conf:ro" in mounts
    # ivig-cds.conf includes it by a path relative to /etc/nginx
    assert "./nginx/ivig-cds-outcome.conf:/etc/nginx/ivig-cds-outcome.conf:ro" in mounts
    assert "include ivig-cds-outcome.conf;" in (ROOT / "nginx" / "ivig-cds.conf").read_text()
    assert "server ivig-cds:8080;" in (ROOT / "nginx" / "ivig-cds.conf").read_text()
    assert services["proxy"]["depends_on"]["ivig-cds"]["condition"] == "service_healthy"


def test_dockerfile_runs_as_a_non_root_user_with_gunicorn() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    # numeric: Kubernetes' runAsNonRoot checks it (deploy/kubernetes/deployment.yaml's runAsUser)
    assert re.search(r"^USER 10001$", dockerfile, re.MULTILINE)
    assert "useradd --system --uid 10001" in dockerfile
    assert '"ivig-cds", "serve"' in dockerfile
    assert "COPY fhir_fixtures" in dockerfile  # the loader reads the fixture bundles
    # The non-root user writes only /data: the audit spool must be there, on a volume.
    assert "ENV IVIG_CDS_AUDIT_SPOOL_DIR=/data/" in dockerfile
    assert "audit-spool:/data" in COMPOSE["services"]["ivig-cds"]["volumes"]


def _compose_command() -> list[str] | None:
    """``docker compose`` (the plugin), else the standalone ``docker-compose``, else None."""
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    return None


COMPOSE_COMMAND = _compose_command()


@pytest.mark.skipif(
    COMPOSE_COMMAND is None,
    reason="neither the docker compose plugin nor docker-compose is installed on this machine",
)
def test_docker_compose_config_validates() -> None:
    assert COMPOSE_COMMAND is not None
    result = subprocess.run(
        [*COMPOSE_COMMAND, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
