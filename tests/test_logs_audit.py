"""Structured logs with a request id and nothing secret; an audit record for every hook call."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import full_prefetch, hook_request, load_json, make_app, order_for, scenario_resources
from flask.testing import FlaskClient
from sqlalchemy import select

from cds_service.feedback import hook_calls
from cds_service.logs import JsonFormatter, RedactingFilter, redact

SCENARIO = "ivig-in-dvt-resolved-history"


def _call(client: FlaskClient, headers: dict[str, str] | None = None) -> Any:
    body = hook_request(
        "order-select",
        SCENARIO,
        [order_for("privigen-iv", SCENARIO)],
        prefetch=full_prefetch(scenario_resources(SCENARIO)),
    )
    return client.post("/cds-services/ivig-order-select", json=body, headers=headers or {})


def test_every_hook_call_leaves_an_audit_record(client: FlaskClient, app: Any) -> None:
    response = _call(client)
    cards = response.get_json()["cards"]
    with app.extensions["ivig_cds"].store.engine.connect() as connection:
        rows = connection.execute(select(hook_calls)).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert row["service_id"] == "ivig-order-select"
    assert row["hook_instance"] == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    assert row["knowledge_version"] == app.extensions["ivig_cds"].registry.knowledge_version
    assert "+" in row["knowledge_version"]  # date + content hash
    assert row["request_id"] == response.headers["X-Request-ID"]
    shown = json.loads(row["cards"])
    assert [c["uuid"] for c in shown] == [c["uuid"] for c in cards]
    assert [c["topic"] for c in shown] == [c["source"]["topic"]["code"] for c in cards]


def test_a_call_with_no_cards_is_audited_too(client: FlaskClient, app: Any) -> None:
    body = load_json("requests/order-select-not-ivig.json")
    assert client.post("/cds-services/ivig-order-select", json=body).get_json() == {"cards": []}
    with app.extensions["ivig_cds"].store.engine.connect() as connection:
        rows = connection.execute(select(hook_calls)).mappings().all()
    assert [json.loads(r["cards"]) for r in rows] == [[]]


def test_audit_survives_a_database_outage_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import create_engine

    app = make_app(tmp_path)
    app.extensions["ivig_cds"].store.engine = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none"
    )
    with caplog.at_level(logging.ERROR):
        response = _call(app.test_client())
    assert response.status_code == 200 and response.get_json()["cards"]  # cards still shown
    audit = [r for r in caplog.records if hasattr(r, "audit")]
    assert audit and audit[0].audit["service_id"] == "ivig-order-select"


def test_request_id_is_echoed_or_made(client: FlaskClient) -> None:
    assert _call(client, {"X-Request-ID": "ehr-trace-42"}).headers["X-Request-ID"] == "ehr-trace-42"
    made = _call(client, {"X-Request-ID": "bad id with spaces; drop table"}).headers["X-Request-ID"]
    assert made != "bad id with spaces; drop table" and len(made) >= 16


def test_json_log_lines_carry_the_request_id_and_no_secrets() -> None:
    from cds_service.logs import request_id

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    token = request_id.set("req-1")
    try:
        logger.warning("sent %s", "Authorization: Bearer abc.def-ghi")
        logger.warning("jwt eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln", extra={"service": "s"})
    finally:
        request_id.reset(token)
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["req-1", "req-1"]
    assert "abc.def-ghi" not in stream.getvalue() and "eyJpc3MiOiJ4In0" not in stream.getvalue()
    assert lines[1]["service"] == "s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer abc123", "Bearer [redacted]"),
        ("bearer x.y.z", "bearer [redacted]"),
        ("token=eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig", "token=[redacted-jwt]"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redaction(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_fhir_fetch_threads_log_with_the_request_id(
    client: FlaskClient, fhir_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Fetches run in a thread pool; their log lines still carry the caller's request id."""
    from conftest import FHIR_BASE, FakeFhirServer

    FakeFhirServer(fhir_mock, scenario_resources(SCENARIO))
    body = hook_request(
        "order-select", SCENARIO, [order_for("privigen-iv", SCENARIO)], fhir_server=FHIR_BASE
    )
    from cds_service.logs import RedactingFilter

    stamp = RedactingFilter()  # stamps the request id when a record is emitted, in its thread
    caplog.handler.addFilter(stamp)
    try:
        with caplog.at_level(logging.DEBUG, logger="cds_service.fhir.client"):
            response = client.post(
                "/cds-services/ivig-order-select",
                json=body,
                headers={"X-Request-ID": "trace-fetch-1"},
            )
    finally:
        caplog.handler.removeFilter(stamp)
    assert response.status_code == 200
    fetches = [r for r in caplog.records if r.name == "cds_service.fhir.client"]
    assert len(fetches) >= 6, "the client logs each FHIR GET at debug level"
    assert {getattr(r, "request_id", None) for r in fetches} == {"trace-fetch-1"}
