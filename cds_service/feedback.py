"""The audit, card and feedback store (SQLAlchemy Core): SQLite by default, or PostgreSQL.

Every hook call leaves an audit record (service, hookInstance, request id, client, knowledge
version, the cards shown with their topics, tolerated client deviations) and every card it issued,
so overrides can be tied to what was shown: a feedback item naming a card this service never
issued is refused (404) and nothing of that batch is stored. A batch is written in one transaction
and acknowledged only after the commit. Audit records arrive in batches from
``cds_service.audit.AuditWriter``, which keeps them until the database has taken them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from cds_service.audit import AuditRecord
from cds_service.errors import InvalidHookRequest, Issue, StoreUnavailable, UnknownCard

log = logging.getLogger(__name__)

metadata = MetaData()


class NulFree(TypeDecorator[str]):
    """A string column that drops NUL: PostgreSQL text cannot hold it (the insert fails and the
    batch with it), and a NUL carries no meaning in any field the service stores."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.replace("\x00", "") if isinstance(value, str) else value


class NulFreeText(NulFree):
    impl = Text
    cache_ok = True


issued_cards = Table(
    "issued_card",
    metadata,
    Column("uuid", NulFree(100), primary_key=True),
    Column("service_id", NulFree(100), nullable=False, index=True),
    Column("hook_instance", NulFree(200), nullable=False),
    Column("topic", NulFree(100)),
    Column("indicator", NulFree(20), nullable=False),
    Column("suggestion_uuids", NulFreeText, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # Made but left out of an order-sign answer: order-select showed it (contract §7.6).
    Column("suppressed", Boolean),
    # Added for the reports (issue 13); NULL in rows stored before them. mode: "live" or
    # "shadow" (made, recorded, never shown; NULL is live); patient_key: a pseudonymous digest
    # of FHIR server and patient id, to count patients without storing who they are.
    Column("hook", NulFree(40)),
    Column("mode", NulFree(10)),
    Column("patient_key", NulFree(64)),
    Column("summary", NulFreeText),
)

hook_calls = Table(
    "hook_call",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", NulFree(100), nullable=False, index=True),
    Column("hook_instance", NulFree(200), nullable=False, index=True),
    Column("request_id", NulFree(100)),
    Column("client", NulFree(300)),  # the authenticated issuer, when auth is on
    Column("knowledge_version", NulFree(100), nullable=False),
    # JSON: [{"uuid", "topic", "indicator"}], and "suppressed": true on a card left out
    Column("cards", NulFreeText, nullable=False),
    Column("called_at", DateTime(timezone=True), nullable=False),
    Column("notes", NulFreeText),  # JSON list: client deviations the service tolerated
    # The audit writer's id of the record: a replayed spool never stores one twice.
    Column("record_id", NulFree(40)),
    Column("hook", NulFree(40)),  # these three as on issued_card
    Column("mode", NulFree(10)),
    Column("patient_key", NulFree(64)),
    Index("ix_hook_call_record_id", "record_id", unique=True),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card_uuid", NulFree(100), ForeignKey("issued_card.uuid"), nullable=False, index=True),
    Column("service_id", NulFree(100), nullable=False),
    Column("outcome", NulFree(20), nullable=False),
    Column("accepted_suggestions", NulFreeText),
    Column("override_system", NulFreeText),
    Column("override_code", NulFreeText),
    Column("override_display", NulFreeText),
    Column("user_comment", NulFreeText),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)


# Readiness writes a row here and rolls it back: a database that answers SELECT 1 but cannot be
# written (read-only, disk full) is not ready to keep what the service shows.
ready_probe = Table("ready_probe", metadata, Column("id", Integer, primary_key=True))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets gunicorn workers read while one writes; NORMAL keeps commits durable across a
    # process crash (an OS crash may lose the last commits, which WAL documents).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_SQLITE_WRITERS: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite, one at a time in this process: the audit writer and the
    order-select memory's writer are threads, and while one held the database's write lock
    waiting for the interpreter (busy request threads hold it), the other's busy timeout ran
    out ("database is locked", its batch kept for retry). PostgreSQL locks rows, not the
    database: its writers run side by side."""
    lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if engine.dialect.name == "sqlite":
        lock = _SQLITE_WRITERS.setdefault(str(engine.url), threading.Lock())
    with lock, engine.begin() as connection:
        yield connection


# A lock another thread held at the fork would be held for ever in the child.
os.register_at_fork(after_in_child=_SQLITE_WRITERS.clear)


# A database address that drops packets would otherwise hold a connect for minutes (the
# kernel's SYN retries): start-up, /readyz and every write would hang with it.
CONNECT_TIMEOUT_S = 3


def _unavailable(exc: SQLAlchemyError) -> StoreUnavailable:
    log.error("feedback not stored: %s", type(exc).__name__)
    return StoreUnavailable("the feedback store is unavailable; nothing was stored")


def make_engine(url: str) -> Engine:
    sqlite = url.startswith("sqlite")
    connect_args = {} if sqlite else {"connect_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(url, pool_pre_ping=not sqlite, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def create_tables(tables: MetaData, engine: Engine) -> None:
    """``CREATE TABLE`` for those not there yet. Processes starting together (gunicorn's
    workers, several instances) race: between one's existence check and its CREATE another
    creates a table, and the first fails ("table issued_card already exists"), the next table
    too. So: again, until a pass finds them all (`ivig-cds serve` also creates them once in
    the master, before the workers start)."""
    for attempt in range(1, 6):
        try:
            tables.create_all(engine)
            return
        except SQLAlchemyError:
            if attempt == 5:
                raise
            time.sleep(0.05 * attempt)


@dataclass(frozen=True)
class StoredFeedback:
    """What ``FeedbackStore.store_feedback`` stored: ``count`` items (the API's ``{"stored": n}``)
    and, per item in the batch's order, its card's topic (None for a card without one) and its
    outcome."""

    count: int
    outcomes: tuple[tuple[str | None, str], ...] = ()


class FeedbackStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        create_tables(metadata, self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Columns added since a table was created (nullable, so old rows stay valid)."""
        for table in (hook_calls, issued_cards):
            existing = {column["name"] for column in inspect(self.engine).get_columns(table.name)}
            for column in table.columns:
                if column.name in existing or not column.nullable:
                    continue
                kind = column.type.compile(dialect=self.engine.dialect)
                try:
                    with self.engine.begin() as connection:
                        connection.execute(
                            text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")
                        )
                except SQLAlchemyError:
                    # Another worker added it first; the column is there either way.
                    log.info("column %s.%s was added by another worker", table.name, column.name)
        with self.engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE UNIQUE INDEX IF NOT EXISTS ix_hook_call_record_id "
                    "ON hook_call (record_id)"
                )
            )

    def store_audit(self, records: list[AuditRecord]) -> None:
        """Store hook-call records and the cards they issued, in one transaction; records already
        stored (a replayed spool) are skipped. Raises on a database failure: the audit writer
        keeps the records and retries."""
        with writing(self.engine) as connection:
            ids = [record.record_id for record in records]
            stored = set(
                connection.execute(
                    select(hook_calls.c.record_id).where(hook_calls.c.record_id.in_(ids))
                ).scalars()
            )
            fresh = [record for record in records if record.record_id not in stored]
            if not fresh:
                return
            connection.execute(insert(hook_calls), [_call_row(record) for record in fresh])
            cards = [row for record in fresh for row in _card_rows(record)]
            if cards:
                connection.execute(insert(issued_cards), cards)

    def store_feedback(self, service_id: str, items: list[dict[str, Any]]) -> StoredFeedback:
        """Store a validated feedback batch atomically; return how many items were stored and,
        for the ``/metrics`` feedback counter, each item's card topic and outcome."""
        uuids = {item["card"] for item in items}
        try:
            with writing(self.engine) as connection:
                issued = connection.execute(
                    select(
                        issued_cards.c.uuid, issued_cards.c.suggestion_uuids, issued_cards.c.topic
                    ).where(
                        issued_cards.c.uuid.in_(uuids),
                        issued_cards.c.service_id == service_id,
                    )
                ).all()
                known = {row.uuid: set(json.loads(row.suggestion_uuids)) for row in issued}
                _check_against_issued(items, known)
                received = datetime.now(UTC)
                connection.execute(insert(feedback), [_row(service_id, i, received) for i in items])
        except (UnknownCard, InvalidHookRequest):
            raise
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from exc
        topics = {row.uuid: row.topic for row in issued}
        return StoredFeedback(
            len(items), tuple((topics[item["card"]], item["outcome"]) for item in items)
        )

    def missing_cards(self, service_id: str, uuids: set[str]) -> set[str]:
        """Which of ``uuids`` this service has not issued (as far as the database knows yet);
        a read, for feedback waiting on another instance's audit writer."""
        try:
            with self.engine.connect() as connection:
                found = connection.execute(
                    select(issued_cards.c.uuid).where(
                        issued_cards.c.uuid.in_(uuids), issued_cards.c.service_id == service_id
                    )
                ).scalars()
                return uuids - set(found)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from exc

    def writable(self) -> str:
        """ "" when a write would succeed; else what failed (the exception's class name)."""
        try:
            with self.engine.connect() as connection:
                transaction = connection.begin()
                try:
                    connection.execute(insert(ready_probe).values(id=1))
                finally:
                    transaction.rollback()
        except SQLAlchemyError as exc:
            return type(exc).__name__
        return ""

    def count_feedback(self, card_uuid: str) -> int:
        with self.engine.connect() as connection:
            query = select(func.count()).where(feedback.c.card_uuid == card_uuid)
            return int(connection.execute(query).scalar_one())


def _call_row(record: AuditRecord) -> dict[str, Any]:
    shown: list[dict[str, Any]] = [
        {"uuid": c.uuid, "topic": c.topic, "indicator": c.indicator} for c in record.cards
    ]
    for entry, card in zip(shown, record.cards, strict=True):
        if card.suppressed:  # only then, so the shape of every other record stays as it was
            entry["suppressed"] = True
    return {
        "record_id": record.record_id,
        "service_id": record.service_id,
        "hook_instance": record.hook_instance,
        "request_id": record.request_id,
        "client": record.client,
        "knowledge_version": record.knowledge_version,
        "cards": json.dumps(shown),
        "called_at": record.when,
        "notes": json.dumps(list(record.notes)) if record.notes else None,
        "hook": record.hook,
        "mode": record.mode,
        "patient_key": record.patient_key,
    }


def _card_rows(record: AuditRecord) -> list[dict[str, Any]]:
    return [
        {
            "uuid": card.uuid,
            "service_id": record.service_id,
            "hook_instance": record.hook_instance,
            "topic": card.topic,
            "indicator": card.indicator,
            "suggestion_uuids": json.dumps(list(card.suggestions)),
            "issued_at": record.when,
            "suppressed": card.suppressed,
            "hook": record.hook,
            "mode": record.mode,
            "patient_key": record.patient_key,
            "summary": card.summary or None,
        }
        for card in record.cards
    ]


def _check_against_issued(items: list[dict[str, Any]], known: dict[str, set[str]]) -> None:
    unknown = sorted({item["card"] for item in items} - known.keys())
    if unknown:
        raise UnknownCard(
            "feedback names cards this service did not issue",
            [Issue(f"unknown card uuid {uuid}", "feedback.card") for uuid in unknown],
        )
    wrong = [
        Issue(f"suggestion {s['id']} is not a suggestion of card {item['card']}", "feedback")
        for item in items
        for s in item.get("acceptedSuggestions", [])
        if s["id"] not in known[item["card"]]
    ]
    if wrong:
        raise InvalidHookRequest("feedback names unknown suggestions", wrong)


def _row(service_id: str, item: dict[str, Any], received: datetime) -> dict[str, Any]:
    override = item.get("overrideReason", {})
    reason = override.get("reason", {})
    accepted = item.get("acceptedSuggestions")
    return {
        "card_uuid": item["card"],
        "service_id": service_id,
        "outcome": item["outcome"],
        "accepted_suggestions": json.dumps([s["id"] for s in accepted]) if accepted else None,
        "override_system": reason.get("system"),
        "override_code": reason.get("code"),
        "override_display": reason.get("display"),
        "user_comment": override.get("userComment"),
        # Stored as UTC: SQLite keeps no offset, so an instant must not depend on one.
        "outcome_timestamp": item["outcomeTimestamp"].astimezone(UTC),
        "received_at": received,
    }
