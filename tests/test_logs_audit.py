"""Structured logs with a request id and nothing secret; an audit record for every hook call."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    AUDIT_FLUSH_S,
    full_prefetch,
    hook_request,
    load_json,
    make_app,
    order_for,
    scenario_resources,
)
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


def audit_rows(app: Any) -> list[Any]:
    """The stored audit records, once the writer has written what was queued."""
    assert app.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S)
    with app.extensions["ivig_cds"].store.engine.connect() as connection:
        return list(connection.execute(select(hook_calls)).mappings().all())


def test_every_hook_call_leaves_an_audit_record(client: FlaskClient, app: Any) -> None:
    response = _call(client)
    cards = response.get_json()["cards"]
    assert app.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S)
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
    assert [json.loads(r["cards"]) for r in audit_rows(app)] == [[]]


def test_a_tolerated_client_deviation_is_audited(client: FlaskClient, app: Any) -> None:
    order = order_for("privigen-iv", SCENARIO) | {"category": {"text": "inpatient"}}
    order["reasonCode"] = {"text": "Guillain-Barré syndrome"}
    body = hook_request(
        "order-select", SCENARIO, [order], prefetch=full_prefetch(scenario_resources(SCENARIO))
    )
    assert client.post("/cds-services/ivig-order-select", json=body).status_code == 200
    [row] = audit_rows(app)
    assert json.loads(row["notes"]) == [
        "MedicationRequest/privigen-iv sends reasonCode as a single object where FHIR R4 wants "
        "a list"
    ]


def test_audit_survives_a_database_outage_and_is_written_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import create_engine

    app = make_app(tmp_path)
    store = app.extensions["ivig_cds"].store
    working = store.engine
    store.engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with caplog.at_level(logging.ERROR):
        response = _call(app.test_client())
        assert app.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S)
    assert response.status_code == 200 and response.get_json()["cards"]  # cards still shown
    audit = [r for r in caplog.records if hasattr(r, "audit")]
    assert audit and audit[0].audit["service_id"] == "ivig-order-select"
    pending = list((tmp_path / "audit-spool").glob("audit-pending-*.jsonl"))
    assert len(pending) == 1, "the record is kept for a retry, not only logged"

    store.engine = working
    app.extensions["ivig_cds"].audit._replay_orphans()  # what the writer's retry loop does
    assert [r["service_id"] for r in audit_rows(app)] == ["ivig-order-select"]
    assert not list((tmp_path / "audit-spool").glob("audit-pending-*.jsonl"))


def test_records_of_a_process_that_died_are_written_by_the_next_one(tmp_path: Path) -> None:
    """A record is spooled before the answer leaves: a crash before the database write loses
    nothing. A spool segment no live process holds is replayed at start-up, once."""
    from cds_service.audit import AuditRecord, ShownCard

    spool = tmp_path / "audit-spool"
    spool.mkdir()
    record = AuditRecord(
        "ivig-order-select",
        "from-a-dead-worker",
        "2026-06-15T12:00:00+00:00",
        "v1",
        (ShownCard("card-of-a-dead-worker", "renal-risk", "warning", ("s1",)),),
    )
    segment = spool / "audit-99999-1-1.jsonl"
    segment.write_text(record.to_json() + "\n" + '{"cut short by the cra', encoding="utf-8")
    app = make_app(tmp_path)  # its writer replays orphaned segments when it starts
    writer = app.extensions["ivig_cds"].audit
    writer._replay_orphans()
    assert not segment.exists()
    segment.write_text(record.to_json() + "\n", encoding="utf-8")  # the same record again
    writer._replay_orphans()
    assert [r["hook_instance"] for r in audit_rows(app)] == ["from-a-dead-worker"]


def test_a_record_spooled_before_the_report_fields_existed_is_still_read() -> None:
    """A spool written by the previous version (no hook, mode, patient key or summary) is
    replayed after an upgrade: those fields take their defaults (live, unknown)."""
    from cds_service.audit import AuditRecord, ShownCard, patient_key

    new = AuditRecord(
        "ivig-order-select",
        "h1",
        "2026-06-15T12:00:00+00:00",
        "v1",
        (ShownCard("c1", "IVIGDOSEWARNING", "warning", ("s1",), False, "Dose above range"),),
        hook="order-select",
        mode="shadow",
        patient_key=patient_key("https://fhir.example/r4/", "p-1"),
    )
    assert AuditRecord.from_json(new.to_json()) == new
    old = json.loads(new.to_json())
    for key in ("hook", "mode", "patient_key"):
        del old[key]
    del old["cards"][0]["summary"]
    read = AuditRecord.from_json(json.dumps(old))
    assert (read.hook, read.mode, read.patient_key, read.cards[0].summary) == (
        None,
        "live",
        None,
        "",
    )


def test_the_patient_key_is_a_digest_of_server_and_patient_never_the_id() -> None:
    from cds_service.audit import patient_key

    key = patient_key("https://fhir.example/r4", "patient-7731")
    assert key is not None and "7731" not in key and len(key) == 32
    assert key == patient_key("https://fhir.example/r4/", "patient-7731")  # trailing slash
    assert key != patient_key("https://other.example/r4", "patient-7731")
    assert patient_key(None, "") is None and patient_key(None, None) is None


def test_a_segment_being_stored_is_not_replayed_by_another_worker(tmp_path: Path) -> None:
    """Two workers share the spool directory. While one stores a batch, the other's retry loop
    must not take that batch's segment for an orphan (it did: the load test logged the batch as
    "not stored (IntegrityError)" when both wrote the same records)."""
    import threading

    from cds_service.audit import AuditRecord, AuditWriter

    spool = tmp_path / "audit-spool"
    storing, release = threading.Event(), threading.Event()
    stored_by: dict[str, list[str]] = {"a": [], "b": []}

    def store_a(records: list[AuditRecord]) -> None:
        storing.set()
        assert release.wait(5)
        stored_by["a"] += [r.record_id for r in records]

    def store_b(records: list[AuditRecord]) -> None:
        stored_by["b"] += [r.record_id for r in records]

    a = AuditWriter(store_a, spool, flush_interval_s=0)
    b = AuditWriter(store_b, spool, flush_interval_s=0)
    record = AuditRecord("ivig-order-select", "in-flight", "2026-06-15T12:00:00+00:00", "v1", ())
    a.submit(record)
    assert storing.wait(5), "writer a never started storing"
    b._replay_orphans()  # what b's retry loop does every few seconds
    release.set()
    assert a.flush(AUDIT_FLUSH_S) and b.flush(AUDIT_FLUSH_S)
    a.close()
    b.close()
    assert stored_by == {"a": [record.record_id], "b": []}
    assert not list(spool.glob("*.jsonl")), "every segment is removed once stored"


def test_a_backlog_is_written_in_steps_and_a_failed_step_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cds_service.audit import AuditRecord, AuditWriter

    app = make_app(tmp_path)
    store = app.extensions["ivig_cds"].store
    calls: list[int] = []

    def second_step_fails(records: list[AuditRecord]) -> None:
        calls.append(len(records))
        if len(calls) == 2:
            raise OSError("the database went away")
        store.store_audit(records)

    writer = AuditWriter(
        second_step_fails, tmp_path / "other-spool", flush_interval_s=0.2, max_batch=2
    )
    records = [
        AuditRecord("ivig-order-select", f"call-{n}", "2026-06-15T12:00:00+00:00", "v1", ())
        for n in range(5)
    ]
    with caplog.at_level(logging.ERROR):
        for record in records:
            writer.submit(record)
        assert writer.flush(AUDIT_FLUSH_S)
    assert calls == [2, 2], "one transaction per step; the failed step ends the batch"
    unstored = [r.audit["hook_instance"] for r in caplog.records if hasattr(r, "audit")]
    assert unstored == ["call-2", "call-3", "call-4"], "only what was not stored is logged so"

    writer._replay_orphans()  # the retry: the stored step is skipped, the rest written once
    writer.close()
    rows = audit_rows(app)
    assert sorted(r["hook_instance"] for r in rows) == [f"call-{n}" for n in range(5)]


def test_a_spool_that_cannot_open_a_segment_loses_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotation failed once (the directory was full, or locked): the batch is still written to
    the database, and the next batch does not take the old records' segment away with it."""
    from cds_service.audit import AuditRecord, AuditWriter

    stored: list[str] = []
    writer = AuditWriter(
        lambda records: stored.extend(r.hook_instance for r in records),
        tmp_path / "spool",
        flush_interval_s=0,
    )
    opens = [OSError(28, "No space left on device")]
    real_open = writer._spool._open

    def open_once_failing() -> Any:
        if opens:
            raise opens.pop()
        return real_open()

    monkeypatch.setattr(writer._spool, "_open", open_once_failing)
    for name in ("first", "second"):
        writer.submit(AuditRecord("ivig-order-select", name, "2026-06-15T12:00:00+00:00", "v1", ()))
        assert writer.flush(AUDIT_FLUSH_S)
    writer.close()
    assert stored == ["first", "second"]
    assert not list((tmp_path / "spool").glob("audit-*.jsonl")), "nothing left to replay"


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
