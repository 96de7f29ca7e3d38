"""Operations endpoints (issue 6 item 5): liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import responses
import sqlalchemy
import sqlalchemy.exc
import yaml
from conftest import (
    FHIR_BASE,
    FIXTURES,
    POSTGRES_URL,
    REQUIRE_SERVICES,
    ROOT,
    FakeFhirServer,
    make_app,
    scenario_resources,
)
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from cds_service.api.metrics import EXTENSION, fhir_outcome, fhir_resource_type, install_metrics
from cds_service.feedback import make_engine

UNREACHABLE_DB = "postgresql+psycopg://postgres@127.0.0.1:1/x"
OPERATIONS = ("/healthz", "/readyz", "/metrics")


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app = make_app(tmp_path)
    if EXTENSION not in app.extensions:  # until create_app installs the metrics itself
        install_metrics(app)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def request_fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "requests" / f"{name}.json").read_text(encoding="utf-8")))


def samples(client: FlaskClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``{sample name: [(labels, value)]}`` parsed from ``/metrics``."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, Any], name: str, **labels: str) -> float:
    return sum(v for got, v in found.get(name, []) if labels.items() <= got.items())


# ---------------------------------------------------------------------------- health, ready


def test_healthz(client: FlaskClient):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_ready(client: FlaskClient, app: Flask):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    version = app.extensions["ivig_cds"].registry.knowledge_version
    assert version
    assert response.get_json() == {"status": "ready", "knowledge_version": version}


def test_readyz_not_ready_when_the_database_does_not_answer(client: FlaskClient, app: Flask):
    app.extensions["ivig_cds"].store.engine = make_engine(UNREACHABLE_DB)
    response = client.get("/readyz")
    assert response.status_code == 503
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [issue["code"] for issue in outcome["issue"]] == ["transient"]
    assert "database" in outcome["issue"][0]["diagnostics"]
    assert "postgres@" not in response.get_data(as_text=True), "no connection URL in the body"
    assert client.get("/healthz").status_code == 200, "liveness does not depend on the database"


def test_readyz_not_ready_when_the_database_answers_but_cannot_be_written(
    client: FlaskClient, app: Flask, tmp_path: Path
) -> None:
    """Issue 12: a database that answers SELECT 1 but takes no write (here a read-only SQLite
    file; on PostgreSQL a read-only transaction) said "ready" while records could not be kept."""
    path = tmp_path / "read-only.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE ready_probe (id INTEGER PRIMARY KEY)")
    # read-only by the URI, not by file mode: the tests may run as root
    app.extensions["ivig_cds"].store.engine = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    response = client.get("/readyz")
    assert response.status_code == 503, response.get_json()
    assert "cannot be written" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.postgres
def test_readyz_not_ready_on_a_read_only_postgresql(client: FlaskClient, app: Flask) -> None:
    """PostgreSQL in read-only transactions (a standby, or default_transaction_read_only) answers
    SELECT 1 and refuses every write: once "ready", now not."""
    url = make_url(POSTGRES_URL).update_query_dict(
        {"options": "-c default_transaction_read_only=on"}
    )
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is required (IVIG_CDS_REQUIRE_SERVICES=1): {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    app.extensions["ivig_cds"].store.engine = engine
    try:
        response = client.get("/readyz")
    finally:
        engine.dispose()
    assert response.status_code == 503, response.get_json()
    assert "cannot be written" in response.get_json()["issue"][0]["diagnostics"]


def test_readyz_not_ready_when_the_audit_spool_cannot_be_written(
    client: FlaskClient, app: Flask
) -> None:
    spool = Path(app.extensions["ivig_cds"].audit._spool.directory)
    shutil.rmtree(spool)
    spool.write_text("a file where the directory was")  # nothing can be created in it
    try:
        response = client.get("/readyz")
    finally:  # the audit writer replays from it now and then
        spool.unlink()
        spool.mkdir()
    assert response.status_code == 503, response.get_json()
    assert "audit spool" in response.get_json()["issue"][0]["diagnostics"]


def test_readyz_not_ready_without_knowledge(client: FlaskClient, app: Flask):
    app.extensions["ivig_cds"].registry.knowledge_version = ""
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "knowledge" in response.get_json()["issue"][0]["diagnostics"]


# --------------------------------------------------------------------------------- metrics


def test_metrics_count_requests_and_cards(client: FlaskClient):
    body = request_fixture("order-select-full-prefetch")
    response = client.post("/cds-services/ivig-order-select", json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert cards
    client.post("/cds-services/ivig-nothing", json=body)  # 404: not labelled with its id

    found = samples(client)
    service = {"service": "ivig-order-select"}
    assert value(found, "ivig_cds_http_requests_total", status="200", **service) == 1
    assert value(found, "ivig_cds_http_request_duration_seconds_count", **service) == 1
    assert value(found, "ivig_cds_http_requests_total", status="404", service="") == 1
    assert not any(
        labels.get("service") == "ivig-nothing" for rows in found.values() for labels, _ in rows
    )
    for card in cards:
        topic = card["source"]["topic"]["code"]
        labels = {"topic": topic, "indicator": card["indicator"], **service}
        assert value(found, "ivig_cds_cards_total", **labels) >= 1
    assert value(found, "ivig_cds_cards_total") == len(cards)


def test_metrics_registries_are_per_app(tmp_path: Path, client: FlaskClient):
    client.get("/healthz")
    (tmp_path / "other").mkdir()
    other = make_app(tmp_path / "other")
    if EXTENSION not in other.extensions:
        install_metrics(other)
    found = samples(other.test_client())
    assert value(found, "ivig_cds_http_requests_total", endpoint="cds.healthz") == 0
    assert value(samples(client), "ivig_cds_http_requests_total", endpoint="cds.healthz") == 1


def test_metrics_fhir_fetches(client: FlaskClient):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeFhirServer(mock, scenario_resources("ivig-in-dvt-resolved-history"))
        body = request_fixture("order-select-missing-prefetch-keys")
        assert client.post("/cds-services/ivig-order-select", json=body).status_code == 200
    found = samples(client)
    for kind in ("Observation", "AllergyIntolerance", "MedicationRequest"):
        count = value(found, "ivig_cds_fhir_fetch_duration_seconds_count", resource_type=kind)
        assert count >= 1, kind
    assert value(found, "ivig_cds_fhir_fetch_failures_total") == 0


def test_metrics_fhir_failures(client: FlaskClient):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, re.compile(re.escape(FHIR_BASE) + "/.*"), status=503)
        body = request_fixture("order-select-missing-prefetch-keys")
        client.post("/cds-services/ivig-order-select", json=body)
    found = samples(client)
    failures = value(
        found,
        "ivig_cds_fhir_fetch_failures_total",
        resource_type="Observation",
        outcome="server_error",
    )
    assert failures >= 1


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (f"{FHIR_BASE}/Condition?patient=1", "Condition"),
        (f"{FHIR_BASE}/Patient/abc-1", "Patient"),
        ("https://hapi.example/baseR4?_getpages=x", "other"),
    ],
)
def test_fhir_resource_type_label(url: str, kind: str):
    assert fhir_resource_type(url) == kind


def test_fhir_outcome_label():
    assert [fhir_outcome(s) for s in (200, 401, 404, 302, 429, 503)] == [
        "ok",
        "auth",
        "not_found",
        "redirect",
        "client_error",
        "server_error",
    ]


def test_metrics_without_install_metrics_is_empty(tmp_path: Path):
    bare = make_app(tmp_path)
    bare.extensions.pop(EXTENSION, None)
    response = bare.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.data == b""


# ----------------------------------------------------------------------------- CORS, spec


@pytest.mark.parametrize("path", OPERATIONS)
def test_cors_on_operations(client: FlaskClient, path: str):
    response = client.get(path, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options(
        path,
        headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]


def test_operations_are_in_openapi():
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    for path in OPERATIONS:
        assert {"get", "options"} <= set(document["paths"][path]), path
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert set(metrics["content"]) == {"text/plain"}
    assert "503" in document["paths"]["/readyz"]["get"]["responses"]
