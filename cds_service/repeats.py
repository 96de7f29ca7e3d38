"""Order-select then order-sign without repeats (card contract §7.6).

A card returned at order-select is remembered: one row per card, written before the answer goes
out, in the card/feedback database, so every worker and instance sees it (the audit writer is
asynchronous and cannot serve). At order-sign a card is left out when, within the window, a card
remembered for the same scope (patient, user, client and FHIR server) had the same topic code,
indicator and content digest, and was about one of the same orders (their fingerprints
intersect). Critical cards always repeat; so do dose and product warnings that nobody acknowledged
(no accepted or overridden feedback on the remembered card). A card without a digest or orders is
never remembered nor left out, and a memory that cannot be read leaves nothing out.

No identifier is stored in clear: the scope, the digest and the order fingerprints are sha256
hashes. Rows older than the window are deleted as order-select calls come in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.cards import Card
from cds_service.feedback import create_tables, feedback

log = logging.getLogger(__name__)

metadata = MetaData()

order_select_cards = Table(
    "order_select_card",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(64), nullable=False),  # sha256 of patient, user, client, server
    Column("topic", String(100), nullable=False),
    Column("indicator", String(20), nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 of the card's content digest
    Column("orders", Text, nullable=False),  # JSON list: sha256 of each order fingerprint
    Column("card_uuid", String(100), nullable=False),  # its feedback says "acknowledged"
    Column("shown_at", DateTime(timezone=True), nullable=False),
    Index("ix_order_select_card_scope", "scope", "shown_at"),
    Index("ix_order_select_card_shown_at", "shown_at"),
)

# Dose and product warnings repeat until someone accepts or overrides them (§7.6).
ACKNOWLEDGED_BY_FEEDBACK = ("IVIGDOSE", "IVIGPRODUCT")
ACKNOWLEDGING_OUTCOMES = ("accepted", "overridden")
PURGE_INTERVAL_S = 60.0  # at most one DELETE of expired rows per process per minute
STATEMENT_TIMEOUT = "500ms"  # PostgreSQL: longest wait on the memory within a hook call


def _sha256(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def scope_of(
    context: Mapping[str, Any],
    fhir_server: str | None,
    client: str | None,
    tenant: str | None,
) -> str | None:
    """The hashed key of whom a card was shown to: patient, user, authenticated client and its
    tenant, FHIR server. None without a patient or user: nothing is remembered or left out."""
    patient, user = context.get("patientId"), context.get("userId")
    if not (isinstance(patient, str) and patient and isinstance(user, str) and user):
        return None
    server = (fhir_server or "").rstrip("/")
    return _sha256("ivig-cds repeat scope v1", patient, user, client or "", tenant or "", server)


def _comparable(card: Card) -> bool:
    return bool(card.digest and card.orders and card.topic) and card.indicator != "critical"


def _needs_acknowledgement(card: Card) -> bool:
    topic = card.topic or ""
    return card.indicator == "warning" and topic.startswith(ACKNOWLEDGED_BY_FEEDBACK)


def _orders(card: Card) -> set[str]:
    return {_sha256(order) for order in card.orders}


def _bound(connection: Connection, **settings: str) -> None:
    """PostgreSQL: this transaction's statements give up after ``STATEMENT_TIMEOUT``, so a hook
    call never waits long on a busy or locked database (it answers without the memory instead);
    plus ``settings`` for this transaction only. One round trip; SQLite: nothing (its writers
    wait at most its busy timeout)."""
    if connection.dialect.name != "postgresql":
        return
    values = {"statement_timeout": STATEMENT_TIMEOUT, **settings}
    calls = ", ".join(f"set_config('{name}', :{name}, true)" for name in values)
    connection.execute(text(f"SELECT {calls}"), values)


def utc_now() -> datetime:
    return datetime.now(UTC)


class RepeatMemory:
    """The order-select cards of the last ``window_s`` seconds; ``window_s`` 0 turns it off."""

    def __init__(
        self, engine: Engine, window_s: int, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.engine = engine
        self.window_s = window_s
        # The wall clock, not the evaluation clock: the window is real time between two calls.
        self.clock = clock
        self._next_purge = 0.0

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    def create_schema(self) -> None:
        create_tables(metadata, self.engine)

    def remember(self, scope: str | None, cards: Iterable[Card]) -> None:
        """Remember the order-select cards that a later order-sign may leave out. A failure is
        logged and costs only a repeat at order-sign."""
        if not self.enabled or scope is None:
            return
        now = self.clock().astimezone(UTC)
        rows = [
            {
                "scope": scope,
                "topic": card.topic,
                "indicator": card.indicator,
                "digest": _sha256(card.digest or ""),
                "orders": json.dumps(sorted(_orders(card))),
                "card_uuid": card.uuid,
                "shown_at": now,
            }
            for card in cards
            if _comparable(card)
        ]
        if not rows:
            return
        try:
            with self.engine.begin() as connection:
                # Visible to every session at commit, without waiting for the WAL flush: a
                # server crash may lose the last rows, which costs only a repeated card.
                _bound(connection, synchronous_commit="off")
                connection.execute(insert(order_select_cards), rows)
                if time.monotonic() >= self._next_purge:
                    self._next_purge = time.monotonic() + min(PURGE_INTERVAL_S, self.window_s)
                    connection.execute(
                        delete(order_select_cards).where(
                            order_select_cards.c.shown_at < now - self._window
                        )
                    )
        except SQLAlchemyError as exc:
            log.warning(
                "order-select cards not remembered (%s); order-sign will show them again",
                type(exc).__name__,
            )

    def repeats(self, scope: str | None, cards: Iterable[Card]) -> frozenset[str]:
        """The uuids of the order-sign cards that order-select already showed (to leave out).
        Nothing when the memory cannot be read."""
        candidates = [card for card in cards if _comparable(card)]
        if not self.enabled or scope is None or not candidates:
            return frozenset()
        try:
            return self._repeats(scope, candidates)
        except (SQLAlchemyError, ValueError, TypeError) as exc:
            log.warning(
                "order-select cards could not be read (%s); no order-sign card is left out",
                type(exc).__name__,
            )
            return frozenset()

    @property
    def _window(self) -> timedelta:
        return timedelta(seconds=self.window_s)

    def _repeats(self, scope: str, candidates: list[Card]) -> frozenset[str]:
        since = self.clock().astimezone(UTC) - self._window
        table = order_select_cards
        query = select(
            table.c.topic, table.c.indicator, table.c.digest, table.c.orders, table.c.card_uuid
        ).where(table.c.scope == scope, table.c.shown_at >= since)
        with self.engine.connect() as connection:
            _bound(connection)
            rows = connection.execute(query).all()
            remembered = [
                Remembered(
                    row.topic, row.indicator, row.digest, json.loads(row.orders), row.card_uuid
                )
                for row in rows
            ]
            shown = {card.uuid: _shown_as(card, remembered) for card in candidates}
            asked = {
                uuid
                for card in candidates
                if _needs_acknowledgement(card)
                for uuid in shown[card.uuid]
            }
            acknowledged = self._acknowledged(connection, asked) if asked else set()
        return frozenset(
            card.uuid
            for card in candidates
            if shown[card.uuid]
            and (not _needs_acknowledgement(card) or shown[card.uuid] & acknowledged)
        )

    @staticmethod
    def _acknowledged(connection: Connection, card_uuids: set[str]) -> set[str]:
        """Those of the order-select cards someone accepted or overrode."""
        query = select(feedback.c.card_uuid).where(
            feedback.c.card_uuid.in_(card_uuids), feedback.c.outcome.in_(ACKNOWLEDGING_OUTCOMES)
        )
        return set(connection.execute(query).scalars())


@dataclass(frozen=True)
class Remembered:
    """One order-select card, as stored (hashed)."""

    topic: str
    indicator: str
    digest: str
    orders: list[str]
    card_uuid: str


def _shown_as(card: Card, remembered: list[Remembered]) -> set[str]:
    """The uuids of the order-select cards that ``card`` repeats: same topic code, indicator and
    digest, about one of the same orders."""
    digest, orders = _sha256(card.digest or ""), _orders(card)
    return {
        row.card_uuid
        for row in remembered
        if (row.topic, row.indicator, row.digest) == (card.topic, card.indicator, digest)
        and not orders.isdisjoint(row.orders)
    }
