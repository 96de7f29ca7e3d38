"""The feedback endpoint (CDS Hooks 2.0 #feedback) and the card/feedback store behind it.

Every test runs against SQLite (a file in tmp_path) and PostgreSQL (a fresh schema per test at
IVIG_CDS_TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test). PostgreSQL
tests skip when the server cannot be reached, unless IVIG_CDS_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from conftest import (
    AUDIT_FLUSH_S,
    EVALUATED_AT,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    postgres_schema,
    scenario_resources,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from cds_service.ids import new_uuid
from cds_service.runtime import FEEDBACK_WAITERS

SCENARIO = "ivig-in-dvt-resolved-history"
ORDER = "privigen-iv"
SELECT = "ivig-order-select"
SIGN = "ivig-order-sign"
UNKNOWN_CARD = "00000000-0000-4000-8000-999999999999"
OUTCOME_AT = "2026-06-15T12:05:00Z"
OUTCOME_INSTANT = datetime(2026, 6, 15, 12, 5, tzinfo=UTC)


# --- databases ----------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str
    apps: list[Flask] = field(default_factory=list)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database("sqlite", f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
        yield db
        for app in db.apps:
            app.extensions["ivig_cds"].store.engine.dispose()
        return
    with postgres_schema() as url:
        db = Database("postgresql", url)
        try:
            yield db
        finally:
            for app in db.apps:
                app.extensions["ivig_cds"].store.engine.dispose()


def new_app(database: Database, tmp_path: Path, **overrides: Any) -> Flask:
    app = make_app(tmp_path, DATABASE_URL=database.url, **overrides)
    database.apps.append(app)
    return app


def test_postgres_fixture_isolates_each_test_in_its_own_schema(
    database: Database, tmp_path: Path
) -> None:
    app = new_app(database, tmp_path)
    engine: Engine = app.extensions["ivig_cds"].store.engine
    assert engine.dialect.name == database.kind
    if database.kind == "postgresql":
        with engine.connect() as connection:
            schema = connection.execute(sqlalchemy.text("select current_schema()")).scalar_one()
        assert schema.startswith("ivig_test_")
    assert {"feedback", "issued_card"} <= set(sqlalchemy.inspect(engine).get_table_names())


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class Issued:
    app: Flask
    client: FlaskClient
    cards: list[dict[str, Any]]

    @property
    def card(self) -> dict[str, Any]:
        return self.cards[0]

    @property
    def suggestion_ids(self) -> list[str]:
        return [s["uuid"] for s in self.card["suggestions"]]

    @property
    def override_reason(self) -> dict[str, Any]:
        return dict(self.card["overrideReasons"][0])

    @property
    def engine(self) -> Engine:
        return self.app.extensions["ivig_cds"].store.engine  # type: ignore[no-any-return]


def issue_cards(app: Flask, scenario: str = SCENARIO, order: str = ORDER) -> list[dict[str, Any]]:
    resources = scenario_resources(scenario)
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body = hook_request(
        "order-select", patient_id, [order_for(order, patient_id)], full_prefetch(resources)
    )
    response = app.test_client().post(f"/cds-services/{SELECT}", json=body)
    assert response.status_code == 200, response.get_json()
    cards = list(response.get_json()["cards"])
    assert cards, f"{scenario} with {order} issued no card"
    assert app.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S), "the issued cards are recorded"
    return cards


@pytest.fixture
def issued(database: Database, tmp_path: Path) -> Issued:
    app = new_app(database, tmp_path)
    cards = issue_cards(app)
    card = cards[0]
    assert card.get("uuid"), card
    assert card.get("suggestions"), "the card needs suggestions to accept"
    assert all(s.get("uuid") for s in card["suggestions"])
    assert card.get("overrideReasons"), "the card needs override reasons"
    return Issued(app, app.test_client(), cards)


def rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    meta = sqlalchemy.MetaData()
    found = sqlalchemy.Table(table, meta, autoload_with=engine)
    order = found.c.id if "id" in found.c else found.c.uuid
    with engine.connect() as connection:
        result = connection.execute(sqlalchemy.select(found).order_by(order))
        return [dict(row._mapping) for row in result]


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the service writes UTC, so naive means UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def accepted(card: str, suggestions: list[str], at: str = OUTCOME_AT) -> dict[str, Any]:
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": s} for s in suggestions],
        "outcomeTimestamp": at,
    }


def overridden(card: str, reason: dict[str, Any] | None = None, comment: str | None = None) -> Any:
    override: dict[str, Any] = {}
    if reason is not None:
        override["reason"] = reason
    if comment is not None:
        override["userComment"] = comment
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": override,
        "outcomeTimestamp": OUTCOME_AT,
    }


def post_feedback(client: FlaskClient, body: Any, service: str = SELECT) -> Any:
    return client.post(f"/cds-services/{service}/feedback", json=body)


def outcome_text(payload: dict[str, Any]) -> str:
    assert payload["resourceType"] == "OperationOutcome", payload
    assert payload["issue"], payload
    return json.dumps(payload["issue"])


# --- stored feedback ----------------------------------------------------------------------------


def test_accepted_feedback_is_stored_with_its_suggestions(issued: Issued) -> None:
    before = datetime.now(UTC)
    response = post_feedback(
        issued.client, {"feedback": [accepted(issued.card["uuid"], issued.suggestion_ids)]}
    )
    after = datetime.now(UTC)

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 1}
    [row] = rows(issued.engine, "feedback")
    assert row["card_uuid"] == issued.card["uuid"]
    assert row["service_id"] == SELECT
    assert row["outcome"] == "accepted"
    assert json.loads(row["accepted_suggestions"]) == issued.suggestion_ids
    assert row["override_system"] is None
    assert row["override_code"] is None
    assert row["user_comment"] is None
    assert as_utc(row["outcome_timestamp"]) == OUTCOME_INSTANT
    received = as_utc(row["received_at"])
    assert before.replace(microsecond=0) <= received <= after
    assert issued.app.extensions["ivig_cds"].store.count_feedback(issued.card["uuid"]) == 1


def test_accepting_one_of_several_suggestions_stores_only_that_one(issued: Issued) -> None:
    chosen = issued.suggestion_ids[-1:]
    response = post_feedback(issued.client, {"feedback": [accepted(issued.card["uuid"], chosen)]})

    assert response.status_code == 200, response.get_json()
    [row] = rows(issued.engine, "feedback")
    assert json.loads(row["accepted_suggestions"]) == chosen


def test_overridden_with_a_coded_reason_is_stored(issued: Issued) -> None:
    reason = issued.override_reason
    item = overridden(issued.card["uuid"], reason=reason, comment="infusion at half rate")
    response = post_feedback(issued.client, {"feedback": [item]})

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 1}
    [row] = rows(issued.engine, "feedback")
    assert row["card_uuid"] == issued.card["uuid"]
    assert row["outcome"] == "overridden"
    assert row["accepted_suggestions"] is None
    assert row["override_system"] == reason["system"]
    assert row["override_code"] == reason["code"]
    assert row["override_display"] == reason["display"]
    assert row["user_comment"] == "infusion at half rate"
    assert as_utc(row["outcome_timestamp"]) == OUTCOME_INSTANT


def test_overridden_with_only_a_user_comment_is_stored(issued: Issued) -> None:
    item = overridden(
        issued.card["uuid"], comment="DVT was 10 years ago, discussed with haematology"
    )
    response = post_feedback(issued.client, {"feedback": [item]})

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 1}
    [row] = rows(issued.engine, "feedback")
    assert row["outcome"] == "overridden"
    assert row["override_system"] is None
    assert row["override_code"] is None
    assert row["override_display"] is None
    assert row["user_comment"] == "DVT was 10 years ago, discussed with haematology"


def test_a_batch_of_two_items_is_stored(issued: Issued) -> None:
    card = issued.card["uuid"]
    batch = [accepted(card, issued.suggestion_ids[:1]), overridden(card, issued.override_reason)]
    response = post_feedback(issued.client, {"feedback": batch})

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 2}
    stored = rows(issued.engine, "feedback")
    assert [row["outcome"] for row in stored] == ["accepted", "overridden"]
    assert {row["card_uuid"] for row in stored} == {card}


def test_the_same_card_may_receive_feedback_twice(issued: Issued) -> None:
    card = issued.card["uuid"]
    first = post_feedback(issued.client, {"feedback": [overridden(card, comment="first look")]})
    second = post_feedback(issued.client, {"feedback": [accepted(card, issued.suggestion_ids)]})

    assert first.status_code == 200, first.get_json()
    assert second.status_code == 200, second.get_json()
    assert first.get_json() == second.get_json() == {"stored": 1}
    stored = rows(issued.engine, "feedback")
    assert [(row["card_uuid"], row["outcome"]) for row in stored] == [
        (card, "overridden"),
        (card, "accepted"),
    ]
    assert issued.app.extensions["ivig_cds"].store.count_feedback(card) == 2


def test_a_timestamp_with_an_offset_is_stored_as_the_same_instant(issued: Issued) -> None:
    item = accepted(issued.card["uuid"], issued.suggestion_ids, at="2026-06-15T14:05:00+02:00")
    response = post_feedback(issued.client, {"feedback": [item]})

    assert response.status_code == 200, response.get_json()
    [row] = rows(issued.engine, "feedback")
    assert as_utc(row["outcome_timestamp"]) == OUTCOME_INSTANT, row["outcome_timestamp"]


# --- unknown cards and services -----------------------------------------------------------------


def test_feedback_on_an_unknown_card_is_404_naming_the_uuid(issued: Issued) -> None:
    response = post_feedback(issued.client, {"feedback": [overridden(UNKNOWN_CARD, comment="x")]})

    assert response.status_code == 404
    assert UNKNOWN_CARD in outcome_text(response.get_json())
    assert response.get_json()["issue"][0]["code"] == "not-found"
    assert rows(issued.engine, "feedback") == []


def test_a_batch_with_one_unknown_card_stores_nothing(issued: Issued) -> None:
    batch = [
        accepted(issued.card["uuid"], issued.suggestion_ids),
        overridden(UNKNOWN_CARD, comment="x"),
    ]
    response = post_feedback(issued.client, {"feedback": batch})

    assert response.status_code == 404
    text = outcome_text(response.get_json())
    assert UNKNOWN_CARD in text
    assert issued.card["uuid"] not in text
    assert rows(issued.engine, "feedback") == []


def test_feedback_for_a_card_another_instance_has_not_stored_yet_waits_for_it(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a load balancer the feedback can reach an instance that did not issue the card,
    before the issuer's audit writer (a batch every 20 ms) has stored it. That instance waits
    for the card (IVIG_CDS_FEEDBACK_WAIT_S) instead of refusing the feedback. Here the issuer's
    writer is held until released: without the wait the feedback is a 404; with it, the
    feedback sent while the writer is held is stored once the writer is let go."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    issuer = new_app(database, tmp_path / "a", UUID_FACTORY=new_uuid)
    waiting = new_app(database, tmp_path / "b", UUID_FACTORY=new_uuid, FEEDBACK_WAIT_S=30.0)
    not_waiting = new_app(database, tmp_path / "c", UUID_FACTORY=new_uuid)
    writer = issuer.extensions["ivig_cds"].audit
    released = threading.Event()
    write_queued = writer._write_queued
    monkeypatch.setattr(writer, "_write_queued", lambda: (released.wait(60), write_queued()))

    def issue() -> dict[str, Any]:
        resources = scenario_resources(SCENARIO)
        patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        orders = [order_for(ORDER, patient_id)]
        body = hook_request("order-select", patient_id, orders, full_prefetch(resources))
        response = issuer.test_client().post(f"/cds-services/{SELECT}", json=body)
        assert response.status_code == 200
        return dict(response.get_json()["cards"][0])

    try:
        refused = post_feedback(
            not_waiting.test_client(), {"feedback": [overridden(issue()["uuid"], comment="x")]}
        )
        assert refused.status_code == 404, "the card was not stored yet: the control"
        card = issue()
        threading.Timer(0.3, released.set).start()
        stored = post_feedback(
            waiting.test_client(), {"feedback": [overridden(card["uuid"], comment="x")]}
        )
    finally:
        released.set()
    assert stored.status_code == 200, stored.get_json()
    assert [
        row["card_uuid"] for row in rows(issuer.extensions["ivig_cds"].store.engine, "feedback")
    ] == [card["uuid"]]


def test_only_a_few_feedback_requests_wait_at_once_the_next_is_refused_at_once(
    database: Database, tmp_path: Path
) -> None:
    """Feedback naming cards nobody issued must not tie up a worker: beyond FEEDBACK_WAITERS
    waiting requests, the next is refused without waiting."""
    app = new_app(database, tmp_path, FEEDBACK_WAIT_S=30.0)
    waiters = app.extensions["ivig_cds"]._feedback_waiters
    for _ in range(FEEDBACK_WAITERS):
        assert waiters.acquire(blocking=False)
    try:
        started = time.monotonic()
        response = post_feedback(
            app.test_client(), {"feedback": [overridden(UNKNOWN_CARD, comment="x")]}
        )
        assert response.status_code == 404
        assert time.monotonic() - started < 10, "refused without the 30 s wait"
    finally:
        for _ in range(FEEDBACK_WAITERS):
            waiters.release()


def test_feedback_to_another_service_than_the_one_that_issued_the_card_is_404(
    issued: Issued,
) -> None:
    item = accepted(issued.card["uuid"], issued.suggestion_ids)
    response = post_feedback(issued.client, {"feedback": [item]}, service=SIGN)

    assert response.status_code == 404
    assert issued.card["uuid"] in outcome_text(response.get_json())
    assert rows(issued.engine, "feedback") == []


def test_feedback_to_an_unknown_service_is_404(issued: Issued) -> None:
    item = accepted(issued.card["uuid"], issued.suggestion_ids)
    response = post_feedback(issued.client, {"feedback": [item]}, service="no-such-service")

    assert response.status_code == 404
    assert "no-such-service" in outcome_text(response.get_json())
    assert rows(issued.engine, "feedback") == []


# --- validation ---------------------------------------------------------------------------------


def _without(item: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != key}


def _item(issued: Issued) -> dict[str, Any]:
    return accepted(issued.card["uuid"], issued.suggestion_ids)


INVALID: dict[str, tuple[Callable[[Issued], Any], str]] = {
    "missing feedback": (lambda i: {"items": [_item(i)]}, "feedback"),
    "feedback not a list": (lambda i: {"feedback": _item(i)}, "feedback"),
    "empty feedback list": (lambda i: {"feedback": []}, "feedback"),
    "missing card": (lambda i: {"feedback": [_without(_item(i), "card")]}, "card"),
    "empty card": (lambda i: {"feedback": [{**_item(i), "card": ""}]}, "card"),
    "missing outcome": (lambda i: {"feedback": [_without(_item(i), "outcome")]}, "outcome"),
    "outcome not accepted|overridden": (
        lambda i: {"feedback": [{**_item(i), "outcome": "ignored"}]},
        "outcome",
    ),
    "accepted without acceptedSuggestions": (
        lambda i: {"feedback": [_without(_item(i), "acceptedSuggestions")]},
        "acceptedSuggestions",
    ),
    "accepted with an empty acceptedSuggestions": (
        lambda i: {"feedback": [{**_item(i), "acceptedSuggestions": []}]},
        "acceptedSuggestions",
    ),
    "acceptedSuggestions item without id": (
        lambda i: {"feedback": [{**_item(i), "acceptedSuggestions": [{"uuid": "x"}]}]},
        "acceptedSuggestions",
    ),
    "overrideReason with neither reason nor userComment": (
        lambda i: {"feedback": [overridden(i.card["uuid"])]},
        "overrideReason",
    ),
    "overrideReason reason without code": (
        lambda i: {"feedback": [overridden(i.card["uuid"], reason={"system": "urn:x"})]},
        "overrideReason",
    ),
    "outcomeTimestamp missing": (
        lambda i: {"feedback": [_without(_item(i), "outcomeTimestamp")]},
        "outcomeTimestamp",
    ),
    "outcomeTimestamp not a date": (
        lambda i: {"feedback": [{**_item(i), "outcomeTimestamp": "yesterday"}]},
        "outcomeTimestamp",
    ),
    "outcomeTimestamp without zone": (
        lambda i: {"feedback": [{**_item(i), "outcomeTimestamp": "2026-06-15T12:05:00"}]},
        "outcomeTimestamp",
    ),
    "outcomeTimestamp not a string": (
        lambda i: {"feedback": [{**_item(i), "outcomeTimestamp": 1781525100}]},
        "outcomeTimestamp",
    ),
    "more than 100 items": (lambda i: {"feedback": [_item(i)] * 101}, "feedback"),
    "body is a list": (lambda i: [_item(i)], "body"),
    "second item invalid": (
        lambda i: {"feedback": [_item(i), {**_item(i), "outcome": "dismissed"}]},
        "feedback.1.outcome",
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_feedback_is_400_naming_the_field_and_stores_nothing(
    issued: Issued, case: str
) -> None:
    make_body, field_name = INVALID[case]
    response = post_feedback(issued.client, make_body(issued))

    assert response.status_code == 400, response.get_json()
    payload = response.get_json()
    text = outcome_text(payload)
    assert field_name in text, f"{case}: {field_name} not named in {text}"
    assert all(issue["code"] == "invalid" for issue in payload["issue"])
    assert rows(issued.engine, "feedback") == []


@pytest.mark.parametrize(
    "body",
    [pytest.param(b"", id="empty body"), pytest.param(b"{not json", id="not json")],
)
def test_a_body_that_is_not_json_is_400(issued: Issued, body: bytes) -> None:
    response = issued.client.post(
        f"/cds-services/{SELECT}/feedback", data=body, content_type="application/json"
    )

    assert response.status_code == 400
    text = outcome_text(response.get_json())
    assert "JSON" in text or "empty" in text, text
    assert rows(issued.engine, "feedback") == []


def test_an_accepted_suggestion_that_is_not_on_the_card_is_400_and_stores_nothing(
    issued: Issued,
) -> None:
    foreign = "00000000-0000-4000-8000-888888888888"
    batch = [
        overridden(issued.card["uuid"], comment="valid item in the same batch"),
        accepted(issued.card["uuid"], [issued.suggestion_ids[0], foreign]),
    ]
    response = post_feedback(issued.client, {"feedback": batch})

    assert response.status_code == 400, response.get_json()
    text = outcome_text(response.get_json())
    assert foreign in text
    assert "acceptedSuggestions" in text or "suggestion" in text
    assert rows(issued.engine, "feedback") == []


def test_a_suggestion_of_another_card_cannot_be_accepted(
    database: Database, tmp_path: Path
) -> None:
    app = new_app(database, tmp_path)
    cards = issue_cards(app, scenario="ivig-in-obesity-bmi")  # boxed-warning and dose cards
    with_suggestions = [c for c in cards if c.get("suggestions")]
    assert len(cards) >= 2, cards
    assert with_suggestions, cards
    donor = with_suggestions[0]
    target = next(c for c in cards if c["uuid"] != donor["uuid"])
    foreign = donor["suggestions"][0]["uuid"]
    assert foreign not in [s["uuid"] for s in target.get("suggestions", [])]

    response = post_feedback(app.test_client(), {"feedback": [accepted(target["uuid"], [foreign])]})

    assert response.status_code == 400, response.get_json()
    assert foreign in outcome_text(response.get_json())
    assert rows(app.extensions["ivig_cds"].store.engine, "feedback") == []


# --- store failures and persistence -------------------------------------------------------------


def test_store_down_is_503_and_says_nothing_was_stored(issued: Issued) -> None:
    store = issued.app.extensions["ivig_cds"].store
    working = store.engine
    store.engine = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/x")
    try:
        item = accepted(issued.card["uuid"], issued.suggestion_ids)
        response = post_feedback(issued.client, {"feedback": [item]})
    finally:
        store.engine.dispose()
        store.engine = working

    assert response.status_code == 503, response.get_json()
    payload = response.get_json()
    text = outcome_text(payload)
    assert "nothing was stored" in text
    assert payload["issue"][0]["code"] == "transient"
    assert "127.0.0.1:1" not in text, "no connection details leak to the client"
    assert rows(working, "feedback") == []


def test_the_store_going_down_while_feedback_waits_for_its_card_is_503(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = new_app(database, tmp_path, FEEDBACK_WAIT_S=5.0)
    store = app.extensions["ivig_cds"].store
    working, broken = (
        store.engine,
        sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/x"),
    )
    first_try = store.store_feedback

    def then_down(*args: Any) -> Any:
        try:
            return first_try(*args)  # the card is unknown: the wait begins
        finally:
            store.engine = broken

    monkeypatch.setattr(store, "store_feedback", then_down)
    try:
        response = post_feedback(
            app.test_client(), {"feedback": [overridden(UNKNOWN_CARD, comment="x")]}
        )
    finally:
        store.engine = working
        broken.dispose()
    assert response.status_code == 503, response.get_json()
    assert "nothing was stored" in outcome_text(response.get_json())


def test_a_nul_in_feedback_text_is_dropped_before_the_database(issued: Issued) -> None:
    """Issue 12: PostgreSQL text cannot hold NUL, so the insert (and the batch) failed."""
    item = overridden(issued.card["uuid"], comment="half\x00 rate")
    response = post_feedback(issued.client, {"feedback": [item]})
    assert response.status_code == 200, response.get_json()
    [row] = rows(issued.engine, "feedback")
    assert row["user_comment"] == "half rate"


def test_a_hook_instance_with_a_nul_is_400_and_nothing_is_recorded(
    database: Database, tmp_path: Path
) -> None:
    app = new_app(database, tmp_path)
    resources = scenario_resources(SCENARIO)
    patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    body = hook_request(
        "order-select", patient_id, [order_for(ORDER, patient_id)], full_prefetch(resources)
    )
    body["hookInstance"] = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea\x00"
    response = app.test_client().post(f"/cds-services/{SELECT}", json=body)
    assert response.status_code == 400
    assert "hookInstance: must not contain control characters" in outcome_text(response.get_json())
    assert app.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S)
    assert rows(app.extensions["ivig_cds"].store.engine, "hook_call") == []


def test_feedback_survives_into_a_second_app_on_the_same_database(
    database: Database, tmp_path: Path
) -> None:
    first = new_app(database, tmp_path)
    card = issue_cards(first)[0]
    ids = [s["uuid"] for s in card["suggestions"]]
    response = post_feedback(first.test_client(), {"feedback": [accepted(card["uuid"], ids)]})
    assert response.status_code == 200, response.get_json()
    first.extensions["ivig_cds"].store.engine.dispose()

    second = new_app(database, tmp_path)
    engine = second.extensions["ivig_cds"].store.engine
    [row] = rows(engine, "feedback")
    assert row["card_uuid"] == card["uuid"]
    assert json.loads(row["accepted_suggestions"]) == ids
    assert second.extensions["ivig_cds"].store.count_feedback(card["uuid"]) == 1

    # The second app still knows the card the first one issued, so more feedback on it is taken.
    again = post_feedback(
        second.test_client(), {"feedback": [overridden(card["uuid"], comment="y")]}
    )
    assert again.status_code == 200, again.get_json()
    assert second.extensions["ivig_cds"].store.count_feedback(card["uuid"]) == 2


@pytest.mark.parametrize("scenario", [SCENARIO, "ivig-in-diabetes"])
def test_every_issued_card_is_recorded(database: Database, tmp_path: Path, scenario: str) -> None:
    app = new_app(database, tmp_path)
    cards = issue_cards(app, scenario=scenario)

    recorded = rows(app.extensions["ivig_cds"].store.engine, "issued_card")
    assert len(recorded) == len(cards)
    by_uuid = {row["uuid"]: row for row in recorded}
    assert set(by_uuid) == {card["uuid"] for card in cards}
    for card in cards:
        row = by_uuid[card["uuid"]]
        assert row["service_id"] == SELECT
        assert row["hook_instance"] == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
        assert row["topic"] == card["source"]["topic"]["code"]
        assert row["indicator"] == card["indicator"]
        assert json.loads(row["suggestion_uuids"]) == [
            s["uuid"] for s in card.get("suggestions", [])
        ]
        assert as_utc(row["issued_at"]) == EVALUATED_AT


def test_tables_are_created_though_another_process_races_for_them(tmp_path: Path) -> None:
    """Seen on the production server: two workers creating the tables at once; one failed on
    "table issued_card already exists", then on the next table, did not boot, and gunicorn
    stopped. Each pass that loses the race is tried again until one finds every table."""
    from sqlalchemy.exc import OperationalError

    from cds_service.feedback import create_tables, make_engine, metadata

    class Racing(type(metadata)):  # type: ignore[misc]
        lost = 0

        def create_all(self, bind: Any, **kwargs: Any) -> None:
            if Racing.lost < 3:  # another process created a table since this one looked
                Racing.lost += 1
                raise OperationalError("CREATE TABLE feedback", {}, Exception("already exists"))
            metadata.create_all(bind, **kwargs)

    engine = make_engine(f"sqlite:///{tmp_path / 'raced.sqlite3'}")
    create_tables(Racing(), engine)
    assert Racing.lost == 3
    assert {"feedback", "issued_card"} <= set(sqlalchemy.inspect(engine).get_table_names())
