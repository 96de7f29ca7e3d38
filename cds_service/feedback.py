"""The audit, card and feedback store (SQLAlchemy Core): SQLite by default, or PostgreSQL.

Every hook call leaves an audit record (service, hookInstance, request id, client, knowledge
version, the cards shown with their topics) and every card it issued, so overrides can be tied to
what was shown: a feedback item naming a card this service never issued is refused (404) and
nothing of that batch is stored. A batch is written in one transaction and acknowledged only after
the commit. If the database cannot take an audit record, the record goes to the error log instead:
the clinician still gets the cards, and the audit trail is not lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.cards import Card
from cds_service.errors import InvalidHookRequest, Issue, StoreUnavailable, UnknownCard

log = logging.getLogger(__name__)

metadata = MetaData()

issued_cards = Table(
    "issued_card",
    metadata,
    Column("uuid", String(100), primary_key=True),
    Column("service_id", String(100), nullable=False, index=True),
    Column("hook_instance", String(200), nullable=False),
    Column("topic", String(100)),
    Column("indicator", String(20), nullable=False),
    Column("suggestion_uuids", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)

hook_calls = Table(
    "hook_call",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(100), nullable=False, index=True),
    Column("hook_instance", String(200), nullable=False, index=True),
    Column("request_id", String(100)),
    Column("client", String(300)),  # the authenticated issuer, when auth is on
    Column("knowledge_version", String(100), nullable=False),
    Column("cards", Text, nullable=False),  # JSON: [{"uuid", "topic", "indicator"}]
    Column("called_at", DateTime(timezone=True), nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card_uuid", String(100), ForeignKey("issued_card.uuid"), nullable=False, index=True),
    Column("service_id", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("accepted_suggestions", Text),
    Column("override_system", Text),
    Column("override_code", Text),
    Column("override_display", Text),
    Column("user_comment", Text),
    Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets gunicorn workers read while one writes; NORMAL keeps commits durable across a
    # process crash (an OS crash may lose the last commits, which WAL documents).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class FeedbackStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError:
            # Gunicorn workers start together; another one may have created the tables between
            # this one's existence check and its CREATE. A second pass sees them and does nothing.
            metadata.create_all(self.engine)

    def record_call(
        self,
        service_id: str,
        hook_instance: str,
        cards: list[Card],
        issued_at: datetime,
        knowledge_version: str = "",
        request_id: str | None = None,
        client: str | None = None,
    ) -> None:
        """Record one hook call and the cards it issued, in one transaction."""
        shown = [{"uuid": c.uuid, "topic": c.topic, "indicator": c.indicator} for c in cards]
        call = {
            "service_id": service_id,
            "hook_instance": hook_instance,
            "request_id": request_id,
            "client": client,
            "knowledge_version": knowledge_version,
            "cards": json.dumps(shown),
            "called_at": issued_at.astimezone(UTC),
        }
        rows = self._card_rows(service_id, hook_instance, cards, issued_at)
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(hook_calls), [call])
                if rows:
                    connection.execute(insert(issued_cards), rows)
        except SQLAlchemyError as exc:
            # The cards still go to the clinician; the audit record goes to the log instead.
            log.error(
                "audit record not stored (%s); logged instead",
                type(exc).__name__,
                extra={"audit": {**call, "called_at": call["called_at"].isoformat()}},
            )

    def record_cards(
        self, service_id: str, hook_instance: str, cards: Iterable[Card], issued_at: datetime
    ) -> None:
        self.record_call(service_id, hook_instance, list(cards), issued_at)

    @staticmethod
    def _card_rows(
        service_id: str, hook_instance: str, cards: Iterable[Card], issued_at: datetime
    ) -> list[dict[str, Any]]:
        return [
            {
                "uuid": card.uuid,
                "service_id": service_id,
                "hook_instance": hook_instance,
                "topic": card.topic,
                "indicator": card.indicator,
                "suggestion_uuids": json.dumps([s.uuid for s in card.suggestions]),
                "issued_at": issued_at.astimezone(UTC),
            }
            for card in cards
        ]

    def store_feedback(self, service_id: str, items: list[dict[str, Any]]) -> int:
        """Store a validated feedback batch atomically; return how many items were stored."""
        uuids = {item["card"] for item in items}
        try:
            with self.engine.begin() as connection:
                known = {
                    row.uuid: set(json.loads(row.suggestion_uuids))
                    for row in connection.execute(
                        select(issued_cards.c.uuid, issued_cards.c.suggestion_uuids).where(
                            issued_cards.c.uuid.in_(uuids),
                            issued_cards.c.service_id == service_id,
                        )
                    )
                }
                _check_against_issued(items, known)
                received = datetime.now(UTC)
                connection.execute(insert(feedback), [_row(service_id, i, received) for i in items])
        except (UnknownCard, InvalidHookRequest):
            raise
        except SQLAlchemyError as exc:
            log.error("feedback not stored: %s", type(exc).__name__)
            raise StoreUnavailable("the feedback store is unavailable; nothing was stored") from exc
        return len(items)

    def count_feedback(self, card_uuid: str) -> int:
        with self.engine.connect() as connection:
            query = select(func.count()).where(feedback.c.card_uuid == card_uuid)
            return int(connection.execute(query).scalar_one())


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
