"""Order-select then order-sign without repeats (card contract §7.6): ``cds_service/repeats.py``.

The store is tested with cards built directly; the wiring with two apps (two workers, or two
instances) sharing one database: app A answers order-select, app B order-sign. Every test runs on
SQLite (a file in tmp_path) and on PostgreSQL at IVIG_CDS_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), which skips when unreachable unless
IVIG_CDS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from conftest import (
    AUDIT_FLUSH_S,
    FHIR_BASE,
    FakeFhirServer,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    postgres_schema,
    repeats_at_order_sign,
    scenario_resources,
)
from flask import Flask
from sqlalchemy.engine import Engine

from cds_service.audit import AuditRecord, record_of
from cds_service.cards import Card, Coding, Source
from cds_service.config import ConfigError, Settings, load_settings
from cds_service.feedback import (
    FeedbackStore,
    _sqlite_pragmas,
    hook_calls,
    issued_cards,
    make_engine,
    writing,
)
from cds_service.ids import new_uuid
from cds_service.repeats import RepeatMemory, order_select_cards, scope_of
from cds_service.service import Answer, HookCall, ServiceDefinition, ServiceRegistry

TOPICS = "https://ivig-cds.org/fhir/CodeSystem/card-topic"
SELECT, SIGN = "ivig-order-select", "ivig-order-sign"
PATIENT, USER, SERVER = "patient-7731", "Practitioner/dr-who", "https://fhir.example/r4"
T0 = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
SCOPE = scope_of({"patientId": PATIENT, "userId": USER}, SERVER, "https://ehr.example", None)


# --- databases ----------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str
    engines: list[Engine] = field(default_factory=list)
    apps: list[Flask] = field(default_factory=list)
    memories: list[RepeatMemory] = field(default_factory=list)

    def close(self) -> None:
        for memory in self.memories:
            memory.close()
        for app in self.apps:
            app.extensions["ivig_cds"].audit.close()
            app.extensions["ivig_cds"].repeats.close()
            app.extensions["ivig_cds"].store.engine.dispose()
        for engine in self.engines:
            engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database("sqlite", f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
        yield db
        db.close()
        return
    with postgres_schema() as url:
        db = Database("postgresql", url)
        try:
            yield db
        finally:
            db.close()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Stores:
    feedback: FeedbackStore
    memory: RepeatMemory
    clock: Clock


@pytest.fixture
def stores(database: Database) -> Stores:
    engine = make_engine(database.url)
    database.engines.append(engine)
    store = FeedbackStore(engine)
    store.create_schema()
    clock = Clock()
    memory = RepeatMemory(engine, 3600, clock)
    memory.create_schema()
    database.memories.append(memory)
    return Stores(store, memory, clock)


def card(
    topic: str = "IVIGBOXEDWARNINGINFO",
    indicator: Any = "info",
    digest: str | None = "digest-1",
    orders: tuple[str, ...] = ("privigen 28 g IV day 1",),
    card_uuid: str | None = None,
) -> Card:
    return Card(
        uuid=card_uuid or new_uuid(),
        summary=f"{topic} card",
        indicator=indicator,
        source=Source("IVIG safety", topic=Coding(TOPICS, topic)),
        digest=digest,
        orders=orders,
    )


def again(shown: Card, **changes: Any) -> Card:
    """The card the order-sign call makes for what ``shown`` said (a new uuid, as every call)."""
    values: dict[str, Any] = {
        "topic": shown.topic,
        "indicator": shown.indicator,
        "digest": shown.digest,
        "orders": shown.orders,
    }
    values.update(changes)
    return card(**values)


def audit(store: FeedbackStore, service: str, cards: list[Card], suppressed: Any = ()) -> None:
    store.store_audit(
        [record_of(service, "hook-1", cards, T0, "v1", None, None, (), frozenset(suppressed))]
    )


def give_feedback(store: FeedbackStore, shown: Card, outcome: str) -> None:
    item: dict[str, Any] = {"card": shown.uuid, "outcome": outcome, "outcomeTimestamp": T0}
    if outcome == "overridden":
        item["overrideReason"] = {}
    else:
        item["acceptedSuggestions"] = []
    store.store_feedback(SELECT, [item])


def remember(memory: RepeatMemory, scope: str | None, cards: list[Card]) -> None:
    """``remember``, then wait for the memory's writer: the rows are written after the answer."""
    memory.remember(scope, cards)
    assert memory.flush(AUDIT_FLUSH_S)


def table_rows(engine: Engine, table: sqlalchemy.Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sqlalchemy.select(table))]


# --- the store ----------------------------------------------------------------------------------


def test_an_order_select_card_is_not_repeated_at_order_sign(stores: Stores) -> None:
    shown = card()
    remember(stores.memory, SCOPE, [shown])
    repeated, other = again(shown), card(topic="IVIGAPPROPRIATENESSINFO")
    assert stores.memory.repeats(SCOPE, [repeated, other]) == {repeated.uuid}


def test_a_card_about_the_revised_order_it_proposed_is_not_repeated(stores: Stores) -> None:
    """At order-select the card is about the order as ordered and as revised; the clinician
    accepted the revision, so order-sign sees the revised order."""
    shown = card(orders=("privigen 28 g IV x2", "privigen 28 g IV x1"))
    remember(stores.memory, SCOPE, [shown])
    after_accepting = again(shown, orders=("privigen 28 g IV x1",))
    assert stores.memory.repeats(SCOPE, [after_accepting]) == {after_accepting.uuid}


@pytest.mark.parametrize(
    "change",
    [
        {"topic": "IVIGBOXEDWARNINGNEWFACTOR"},
        {"indicator": "warning"},
        {"digest": "digest-2"},
        {"orders": ("privigen 35 g IV day 1",)},
        {"digest": None},
        {"orders": ()},
    ],
    ids=["topic", "indicator", "digest", "order", "no-digest", "no-orders"],
)
def test_a_card_that_differs_repeats(stores: Stores, change: dict[str, Any]) -> None:
    shown = card()
    remember(stores.memory, SCOPE, [shown])
    assert stores.memory.repeats(SCOPE, [again(shown, **change)]) == frozenset()


@pytest.mark.parametrize(
    ("context", "server", "client", "tenant"),
    [
        ({"patientId": "patient-other", "userId": USER}, SERVER, "https://ehr.example", None),
        (
            {"patientId": PATIENT, "userId": "Practitioner/other"},
            SERVER,
            "https://ehr.example",
            None,
        ),
        (
            {"patientId": PATIENT, "userId": USER},
            "https://fhir.other/r4",
            "https://ehr.example",
            None,
        ),
        ({"patientId": PATIENT, "userId": USER}, SERVER, "https://other-ehr.example", None),
        ({"patientId": PATIENT, "userId": USER}, SERVER, "https://ehr.example", "tenant-2"),
    ],
    ids=["patient", "user", "fhir-server", "client", "tenant"],
)
def test_a_card_for_another_patient_user_or_tenant_repeats(
    stores: Stores, context: dict[str, str], server: str, client: str, tenant: str | None
) -> None:
    shown = card()
    remember(stores.memory, SCOPE, [shown])
    other = scope_of(context, server, client, tenant)
    assert other is not None and other != SCOPE
    assert stores.memory.repeats(other, [again(shown)]) == frozenset()


def test_without_a_patient_or_user_nothing_is_remembered(stores: Stores) -> None:
    assert scope_of({"patientId": PATIENT}, SERVER, None, None) is None
    assert scope_of({"userId": USER, "patientId": ""}, SERVER, None, None) is None
    remember(stores.memory, None, [card()])
    assert table_rows(stores.memory.engine, order_select_cards) == []


def test_the_memory_lasts_the_window(stores: Stores) -> None:
    shown = card()
    remember(stores.memory, SCOPE, [shown])
    stores.clock.now = T0 + timedelta(seconds=3599)
    assert stores.memory.repeats(SCOPE, [again(shown)]) != frozenset()
    stores.clock.now = T0 + timedelta(seconds=3601)
    assert stores.memory.repeats(SCOPE, [again(shown)]) == frozenset()


def test_rows_older_than_the_window_are_deleted(stores: Stores) -> None:
    remember(stores.memory, SCOPE, [card(), card()])
    stores.clock.now = T0 + timedelta(hours=2)
    stores.memory._next_purge = 0.0  # this process's purge is due (at most once a minute)
    fresh = card()
    remember(stores.memory, SCOPE, [fresh])
    rows = table_rows(stores.memory.engine, order_select_cards)
    assert [row["card_uuid"] for row in rows] == [fresh.uuid]


def test_a_window_of_zero_turns_the_memory_off(stores: Stores) -> None:
    off = RepeatMemory(stores.memory.engine, 0, stores.clock)
    shown = card()
    remember(off, SCOPE, [shown])
    assert table_rows(off.engine, order_select_cards) == []
    remember(stores.memory, SCOPE, [shown])  # remembered by a worker with the memory on
    assert off.repeats(SCOPE, [again(shown)]) == frozenset()


def test_critical_cards_always_repeat(stores: Stores) -> None:
    shown = card("IVIGDONOTGIVECRITICAL", "critical")
    remember(stores.memory, SCOPE, [shown])
    assert stores.memory.repeats(SCOPE, [again(shown)]) == frozenset()


@pytest.mark.parametrize("topic", ["IVIGDOSEWARNING", "IVIGPRODUCTWARNING"])
def test_dose_and_product_warnings_repeat_until_acknowledged(stores: Stores, topic: str) -> None:
    shown = card(topic, "warning")
    remember(stores.memory, SCOPE, [shown])
    audit(stores.feedback, SELECT, [shown])
    assert stores.memory.repeats(SCOPE, [again(shown)]) == frozenset(), "no feedback yet"


@pytest.mark.parametrize("outcome", ["accepted", "overridden"])
@pytest.mark.parametrize("topic", ["IVIGDOSEWARNING", "IVIGPRODUCTWARNING"])
def test_acknowledged_dose_and_product_warnings_are_not_repeated(
    stores: Stores, topic: str, outcome: str
) -> None:
    shown, unanswered = card(topic, "warning"), card(topic, "warning", orders=("another order",))
    remember(stores.memory, SCOPE, [shown, unanswered])
    audit(stores.feedback, SELECT, [shown, unanswered])
    give_feedback(stores.feedback, shown, outcome)
    repeated, still_asked = again(shown), again(unanswered)
    assert stores.memory.repeats(SCOPE, [repeated, still_asked]) == {repeated.uuid}


def test_dose_and_product_info_needs_no_acknowledgement(stores: Stores) -> None:
    shown = card("IVIGDOSEINFO", "info")
    remember(stores.memory, SCOPE, [shown])
    repeated = again(shown)
    assert stores.memory.repeats(SCOPE, [repeated]) == {repeated.uuid}


def test_an_unreadable_memory_leaves_nothing_out(
    stores: Stores, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shown = card()
    remember(stores.memory, SCOPE, [shown])
    working = stores.memory.engine
    broken = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}")
    stores.memory.engine = broken
    try:
        with caplog.at_level(logging.WARNING, logger="cds_service.repeats"):
            assert stores.memory.repeats(SCOPE, [again(shown)]) == frozenset()
            remember(stores.memory, SCOPE, [card()])  # does not raise: order-select still answers
    finally:
        stores.memory.engine = working
        broken.dispose()
    messages = [record.getMessage() for record in caplog.records]
    assert any("no order-sign card is left out" in m for m in messages), messages
    assert any("not remembered" in m for m in messages), messages
    assert not any(PATIENT in m or USER in m for m in messages), "no PHI in the log"


# PostgreSQL only: statement_timeout is PostgreSQL's, and SQLite readers never wait (WAL).
@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_locked_memory_is_given_up_on_quickly(
    database: Database, stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL: a hook call does not wait on a locked table (DDL, a stuck transaction); it
    answers without the memory."""
    shown = card()
    remember(stores.memory, SCOPE, [shown])
    with stores.memory.engine.connect() as locker:
        locker.execute(sqlalchemy.text("LOCK TABLE order_select_card IN ACCESS EXCLUSIVE MODE"))
        started = datetime.now(UTC)
        assert stores.memory.repeats(SCOPE, [again(shown)]) == frozenset()
        with caplog.at_level(logging.WARNING, logger="cds_service.repeats"):
            stores.memory.remember(SCOPE, [card()])  # queued: the writer meets the lock
            waited = datetime.now(UTC) - started
            assert stores.memory.flush(AUDIT_FLUSH_S), "the writer gives up on the lock"
        locker.rollback()
    assert waited < timedelta(seconds=2), waited
    assert any("not remembered" in r.getMessage() for r in caplog.records), caplog.records
    assert stores.memory.repeats(SCOPE, [again(shown)]) != frozenset(), "unlocked: read again"


def queued_behind_a_lock(stores: Stores, shown: Card) -> None:
    """``remember`` while another connection holds SQLite's write lock: the row waits for the
    lock, the caller does not. The lock is gone when this returns; the row may not be written
    yet."""
    with stores.memory.engine.connect() as locker:
        locker.exec_driver_sql("BEGIN EXCLUSIVE")
        stores.memory.remember(SCOPE, [shown])
        assert not stores.memory.flush(0.2), "the row waits for the lock, the caller does not"
        locker.rollback()


# SQLite only: its write lock stands for a slow database (PostgreSQL: the test above).
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_rows_are_written_after_the_answer(database: Database, stores: Stores) -> None:
    """order-select does not wait on the database: with the table locked, ``remember`` returns
    and its row is written once the lock goes."""
    shown = card()
    queued_behind_a_lock(stores, shown)
    assert stores.memory.flush(AUDIT_FLUSH_S)
    assert [row["card_uuid"] for row in table_rows(stores.memory.engine, order_select_cards)] == [
        shown.uuid
    ]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_order_sign_waits_only_for_rows_of_its_own_scope(
    database: Database, stores: Stores
) -> None:
    """Under load the queue is rarely empty: an order-sign waits for its own patient and user's
    rows, not for everyone's (it waited the full 0.5 s when any row was pending)."""
    other = scope_of({"patientId": "patient-2", "userId": USER}, SERVER, None, None)
    with stores.memory.engine.connect() as locker:
        locker.exec_driver_sql("BEGIN EXCLUSIVE")
        stores.memory.remember(other, [card()])
        assert stores.memory.flush(0.2, scope=SCOPE), "nothing of SCOPE is pending"
        assert not stores.memory.flush(0.2, scope=other)
        locker.rollback()
    assert stores.memory.flush(AUDIT_FLUSH_S, scope=other)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # meant to die
def test_a_writer_that_died_is_started_again(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stopped by something it cannot catch (a greenlet killed) leaves no order-sign
    waiting, and the next order-select starts another."""
    real = RepeatMemory._write

    def dies(self: RepeatMemory, rows: list[dict[str, Any]]) -> None:
        raise SystemExit  # BaseException: not caught by the writer's loop

    monkeypatch.setattr(RepeatMemory, "_write", dies)
    lost = card()
    stores.memory.remember(SCOPE, [lost])
    assert stores.memory._thread is not None
    stores.memory._thread.join(timeout=AUDIT_FLUSH_S)
    assert stores.memory.repeats(SCOPE, [again(lost)]) == frozenset(), "no wait, nothing kept"
    monkeypatch.setattr(RepeatMemory, "_write", real)
    shown = card()
    remember(stores.memory, SCOPE, [shown])
    assert stores.memory.repeats(SCOPE, [again(shown)]) != frozenset()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_closing_writes_what_is_queued(
    database: Database, stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker's exit: the row still waiting for the database is written, then the writer
    stops."""
    shown = card()
    queued_behind_a_lock(stores, shown)
    stores.memory.close()
    assert stores.memory._thread is not None and not stores.memory._thread.is_alive()
    rows = table_rows(stores.memory.engine, order_select_cards)
    assert [row["card_uuid"] for row in rows] == [shown.uuid]
    with caplog.at_level(logging.WARNING, logger="cds_service.repeats"):
        stores.memory.remember(SCOPE, [card()])  # after the worker's exit: dropped, and said
    assert len(table_rows(stores.memory.engine, order_select_cards)) == 1
    assert stores.memory.dropped == 1
    assert any("the memory is closed" in r.getMessage() for r in caplog.records)


def test_an_unreadable_feedback_table_leaves_nothing_out(stores: Stores) -> None:
    shown = card("IVIGDOSEWARNING", "warning")
    remember(stores.memory, SCOPE, [shown])
    audit(stores.feedback, SELECT, [shown])
    give_feedback(stores.feedback, shown, "overridden")
    assert stores.memory.repeats(SCOPE, [again(shown)]) != frozenset()
    with stores.memory.engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP TABLE feedback"))
    assert stores.memory.repeats(SCOPE, [again(shown)]) == frozenset()


def test_the_memory_holds_no_identifier_in_clear(stores: Stores) -> None:
    remember(stores.memory, SCOPE, [card(digest="findings of patient-7731")])
    [row] = table_rows(stores.memory.engine, order_select_cards)
    stored = json.dumps(row, default=str)
    for clear in (PATIENT, USER, SERVER, "findings of", "privigen"):
        assert clear not in stored, clear
    assert len(row["scope"]) == 64 and len(row["digest"]) == 64


# --- the audit ----------------------------------------------------------------------------------


def test_suppressed_cards_are_audited_as_such(stores: Stores) -> None:
    left_out, shown = card(), card("IVIGDOSEWARNING", "warning")
    audit(stores.feedback, SIGN, [left_out, shown], {left_out.uuid})
    engine = stores.feedback.engine
    flags = {row["uuid"]: row["suppressed"] for row in table_rows(engine, issued_cards)}
    assert flags == {left_out.uuid: True, shown.uuid: False}
    [call] = table_rows(engine, hook_calls)
    listed = {entry["uuid"]: entry.get("suppressed", False) for entry in json.loads(call["cards"])}
    assert listed == flags


def test_the_spooled_record_keeps_the_flag() -> None:
    left_out = card()
    record = record_of(SIGN, "h", [left_out], T0, "v1", None, None, (), {left_out.uuid})
    assert AuditRecord.from_json(record.to_json()).cards[0].suppressed is True
    older = json.loads(record.to_json())  # spooled by a version without the flag
    del older["cards"][0]["suppressed"]
    assert AuditRecord.from_json(json.dumps(older)).cards[0].suppressed is False


def test_an_existing_store_gets_the_suppressed_column(stores: Stores) -> None:
    engine = stores.feedback.engine
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE issued_card DROP COLUMN suppressed"))
    FeedbackStore(engine).create_schema()
    columns = {c["name"] for c in sqlalchemy.inspect(engine).get_columns("issued_card")}
    assert "suppressed" in columns


def test_the_window_is_configured() -> None:
    assert load_settings(Settings, {}, {}).repeat_window_s == 3600
    assert load_settings(Settings, {"IVIG_CDS_REPEAT_WINDOW_S": "0"}, {}).repeat_window_s == 0
    with pytest.raises(ConfigError, match="IVIG_CDS_REPEAT_WINDOW_S"):
        load_settings(Settings, {"IVIG_CDS_REPEAT_WINDOW_S": "-1"}, {})


# --- two workers --------------------------------------------------------------------------------


def fingerprint(call: HookCall) -> str:
    order = call.context["draftOrders"]["entry"][0]["resource"]
    return json.dumps({k: v for k, v in order.items() if k != "id"}, sort_keys=True)


def stub_cards(call: HookCall) -> Answer:
    """What a composer that sets digests answers: the same cards for the same order."""
    orders = (fingerprint(call),)
    return Answer(
        [
            card("IVIGBOXEDWARNINGINFO", "info", orders=orders, card_uuid=call.new_uuid()),
            card("IVIGDOSEWARNING", "warning", orders=orders, card_uuid=call.new_uuid()),
            card("IVIGDONOTGIVECRITICAL", "critical", orders=orders, card_uuid=call.new_uuid()),
        ]
    )


def worker(database: Database, tmp_path: Path, stub: bool = True, **overrides: Any) -> Flask:
    """One gunicorn worker (or instance): its own app, engine and audit writer; the database
    is shared. Random uuids, as in production: two workers' counters would collide."""
    app = make_app(tmp_path, DATABASE_URL=database.url, UUID_FACTORY=new_uuid, **overrides)
    database.apps.append(app)
    if stub:
        app.extensions["ivig_cds"].registry = ServiceRegistry(
            [
                ServiceDefinition(SELECT, "order-select", "select", "stub", (), stub_cards),
                ServiceDefinition(SIGN, "order-sign", "sign", "stub", (), stub_cards),
            ],
            knowledge_version="stub",
        )
    return app


def call(
    app: Flask,
    hook: str,
    order: str = "privigen-iv",
    user: str = USER,
    patient: str = PATIENT,
    prefetch: dict[str, Any] | None = None,
    fhir_server: str | None = None,
) -> list[dict[str, Any]]:
    body = hook_request(hook, patient, [order_for(order, patient)], prefetch, fhir_server)
    body["context"]["userId"] = user
    response = app.test_client().post(
        f"/cds-services/{SELECT if hook == 'order-select' else SIGN}", json=body
    )
    assert response.status_code == 200, response.get_json()
    assert app.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S)
    assert app.extensions["ivig_cds"].repeats.flush(AUDIT_FLUSH_S)
    return list(response.get_json()["cards"])


def topics(cards: list[dict[str, Any]]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards]


def audited(app: Flask, service: str) -> dict[str, bool]:
    engine = app.extensions["ivig_cds"].store.engine
    return {
        str(row["topic"]): bool(row["suppressed"])
        for row in table_rows(engine, issued_cards)
        if row["service_id"] == service
    }


def test_order_sign_on_another_worker_leaves_out_what_order_select_showed(
    database: Database, tmp_path: Path
) -> None:
    a, b = worker(database, tmp_path), worker(database, tmp_path)
    shown = call(a, "order-select")
    assert topics(shown) == ["IVIGBOXEDWARNINGINFO", "IVIGDOSEWARNING", "IVIGDONOTGIVECRITICAL"]
    signed = call(b, "order-sign")
    assert topics(signed) == ["IVIGDOSEWARNING", "IVIGDONOTGIVECRITICAL"]
    assert audited(b, SIGN) == {
        "IVIGBOXEDWARNINGINFO": True,
        "IVIGDOSEWARNING": False,
        "IVIGDONOTGIVECRITICAL": False,
    }


def test_an_overridden_dose_warning_is_not_repeated_on_another_worker(
    database: Database, tmp_path: Path
) -> None:
    a, b = worker(database, tmp_path), worker(database, tmp_path)
    dose = next(c for c in call(a, "order-select") if c["indicator"] == "warning")
    item = {
        "card": dose["uuid"],
        "outcome": "overridden",
        "overrideReason": {"userComment": "dose agreed with the pharmacist"},
        "outcomeTimestamp": "2026-06-15T12:05:00Z",
    }
    stored = a.test_client().post(f"/cds-services/{SELECT}/feedback", json={"feedback": [item]})
    assert stored.status_code == 200, stored.get_json()
    assert topics(call(b, "order-sign")) == ["IVIGDONOTGIVECRITICAL"]


def test_another_order_or_user_sees_every_card_again(database: Database, tmp_path: Path) -> None:
    a, b = worker(database, tmp_path), worker(database, tmp_path)
    call(a, "order-select")
    assert len(call(b, "order-sign", order="octagam-10-iv")) == 3
    assert len(call(b, "order-sign", user="Practitioner/another")) == 3


def test_shadow_mode_answers_no_card_and_audits_every_card_it_made(
    database: Database, tmp_path: Path
) -> None:
    shadow = worker(database, tmp_path, MODE="shadow")
    assert call(shadow, "order-select") == []
    assert call(shadow, "order-sign") == []  # an order-sign after a shadow order-select
    rows = [row for row in table_rows(shadow.extensions["ivig_cds"].store.engine, issued_cards)]
    made = [r for r in rows if r["mode"] == "shadow"]
    assert len(made) == len(rows) == 6 and {r["hook"] for r in made} == {
        "order-select",
        "order-sign",
    }
    # Shadow order-sign leaves out what shadow order-select made, as live would.
    assert sorted(str(r["topic"]) for r in made if r["suppressed"]) == ["IVIGBOXEDWARNINGINFO"]
    assert all(r["patient_key"] and PATIENT not in r["patient_key"] for r in made)


def test_what_shadow_mode_recorded_never_suppresses_a_live_card(
    database: Database, tmp_path: Path
) -> None:
    call(worker(database, tmp_path, MODE="shadow"), "order-select")
    live = worker(database, tmp_path)
    assert len(call(live, "order-sign")) == 3  # nothing of the shadow call is left out


def test_a_mode_other_than_live_or_shadow_is_refused() -> None:
    assert load_settings(Settings, {"IVIG_CDS_MODE": "shadow"}, {}).mode == "shadow"
    with pytest.raises(ConfigError, match="IVIG_CDS_MODE"):
        load_settings(Settings, {"IVIG_CDS_MODE": "silent"}, {})


def test_with_the_window_off_every_card_repeats(database: Database, tmp_path: Path) -> None:
    a = worker(database, tmp_path, REPEAT_WINDOW_S=0)
    call(a, "order-select")
    assert len(call(a, "order-sign")) == 3


# --- end to end, on a fixture scenario ------------------------------------------------------------

SCENARIO = "ivig-in-dvt-resolved-history"  # a boxed-warning (thrombosis) card, no dose card


@pytest.mark.parametrize("mode", ["prefetch", "fhir-fetch"])
def test_order_sign_does_not_repeat_the_thrombosis_card_of_order_select(
    database: Database, tmp_path: Path, fhir_mock: Any, mode: str
) -> None:
    """The real composer, once it sets ``digest`` and ``orders`` (contract §7.6): the same order
    and data at order-sign (another worker) give the same boxed-warning card, which is left out
    and audited as suppressed; critical cards, and dose or product warnings nobody answered,
    would still be shown."""
    resources = scenario_resources(SCENARIO)
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    prefetch = full_prefetch(resources) if mode == "prefetch" else None
    server = FHIR_BASE if mode == "fhir-fetch" else None
    if server:
        FakeFhirServer(fhir_mock, resources)
    a, b = worker(database, tmp_path, stub=False), worker(database, tmp_path, stub=False)

    shown = call(a, "order-select", patient=patient, prefetch=prefetch, fhir_server=server)
    not_again = {
        (c["source"]["topic"]["code"], c["indicator"])
        for c in shown
        if not repeats_at_order_sign(c)
    }
    assert any("thrombosis" in t.lower() or t.startswith("IVIGBOXEDWARNING") for t, _ in not_again)
    signed = call(b, "order-sign", patient=patient, prefetch=prefetch, fhir_server=server)
    repeated = {(c["source"]["topic"]["code"], c["indicator"]) for c in signed} & not_again
    assert not repeated, f"order-sign repeated {sorted(repeated)}"
    suppressed = {topic for topic, flag in audited(b, SIGN).items() if flag}
    assert {topic for topic, _ in not_again} <= suppressed
    for kept in filter(repeats_at_order_sign, shown):
        code = kept["source"]["topic"]["code"]
        assert code in topics(signed), f"{code} must repeat at order-sign"


def test_the_writers_of_one_process_take_turns_on_sqlite(tmp_path: Path) -> None:
    """The audit writer and the memory's writer are threads of one process. While one held
    SQLite's write lock (waiting for the interpreter, busy request threads hold it) the other's
    busy timeout ran out: "database is locked", its batch kept for retry. They take turns."""
    engine = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'turns.sqlite3'}", connect_args={"timeout": 0.1}
    )
    sqlalchemy.event.listen(engine, "connect", _sqlite_pragmas)
    store = FeedbackStore(engine)
    store.create_schema()
    RepeatMemory(engine, 3600).create_schema()
    holding, release, stored = threading.Event(), threading.Event(), []
    row = {"scope": SCOPE, "topic": "T", "indicator": "info", "digest": "d", "orders": "[]"}

    def slow_memory_write() -> None:
        with writing(engine) as connection:
            connection.execute(
                sqlalchemy.insert(order_select_cards), [{**row, "card_uuid": "c", "shown_at": T0}]
            )
            holding.set()
            release.wait(5)

    def audit_write() -> None:
        store.store_audit([record_of(SELECT, "h", [card()], T0, "v1", None, None, ())])
        stored.append(True)

    slow = threading.Thread(target=slow_memory_write)
    slow.start()
    assert holding.wait(5)
    waiting = threading.Thread(target=audit_write)
    waiting.start()
    waiting.join(0.5)  # five busy timeouts: alone, it would have failed by now
    release.set()
    slow.join(5)
    waiting.join(5)
    engine.dispose()
    assert stored == [True]
