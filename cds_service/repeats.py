"""Order-select then order-sign without repeats (card contract §7.6).

A card returned at order-select is remembered: one row per card, in the card/feedback database,
so every worker and instance sees it. The rows are written just after the answer, by this
process's memory writer (a background thread, a greenlet under gevent, that writes what is
queued in one transaction within 10 ms of the first row; under load, several calls' rows share
one). Written before the answer, they took 0.5 ms of an order-select's 3.9 ms (issue 9). An
order-sign in the same process first waits for the queued rows of its own scope (at most
``FLUSH_BEFORE_READ_S``); on another worker or instance, an order-sign sent within about 10 ms
of order-select's answer (before the clinician could have read it) may show its cards again:
the safe way to be wrong.

At order-sign a card is left out when, within the window, a card remembered for the same scope
(patient, user, client and FHIR server) had the same topic code, indicator and content digest,
and was about one of the same orders (their fingerprints intersect). Critical cards always
repeat; so do dose and product warnings that nobody acknowledged (no accepted or overridden
feedback on the remembered card). A card without a digest or orders is
never remembered nor left out, and a memory that cannot be read leaves nothing out.

No identifier is stored in clear: the scope, the digest and the order fingerprints are sha256
hashes. Rows older than the window are deleted as order-select calls come in.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import threading
import time
import weakref
from collections import Counter
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
from cds_service.feedback import create_tables, feedback, writing

log = logging.getLogger(__name__)

_MEMORIES: weakref.WeakSet[RepeatMemory] = weakref.WeakSet()

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
FLUSH_BEFORE_READ_S = 0.5  # order-sign: longest wait for this process's rows of its scope
# The writer waits this long after a first row for more to share the transaction (one row a
# transaction costs 0.09 ms of CPU per call, shared by 50 calls 0.013 ms); an order-sign
# waiting for rows cuts the wait short.
BATCH_S = 0.01
MAX_QUEUED_ROWS = 10_000  # beyond, while a write hangs (a locked database), new rows are dropped


def _sha256(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def scope_of(
    context: Mapping[str, Any],
    fhir_server: str | None,
    client: str | None,
    tenant: str | None,
    mode: str = "live",
) -> str | None:
    """The hashed key of whom a card was shown to: patient, user, authenticated client and its
    tenant, FHIR server. None without a patient or user: nothing is remembered or left out.
    Shadow mode has scopes of its own: what it recorded never suppresses a live card."""
    patient, user = context.get("patientId"), context.get("userId")
    if not (isinstance(patient, str) and patient and isinstance(user, str) and user):
        return None
    server = (fhir_server or "").rstrip("/")
    parts = (patient, user, client or "", tenant or "", server)
    return _sha256("ivig-cds repeat scope v1", *parts, *(("shadow",) if mode == "shadow" else ()))


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
        self._queue: list[dict[str, Any]] = []
        # Rows queued and rows done (written, or their write failed) since the start, and the
        # rows not done yet per scope: a wait is for the rows queued before it, never for those
        # queued while it waits (under load, the queue is never empty for long).
        self._queued = self._done = 0
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # queued, or done
        self._thread: threading.Thread | None = None  # started by the first row (in the worker)
        self._closed = False
        self._urgent = 0  # order-signs (or a close) waiting for rows: write at once
        self.dropped = 0  # rows not remembered: the queue was full, or the memory closed
        _MEMORIES.add(self)

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    def create_schema(self) -> None:
        create_tables(metadata, self.engine)

    def remember(self, scope: str | None, cards: Iterable[Card]) -> None:
        """Queue the order-select cards that a later order-sign may leave out; returns at once.
        A failure to write them is logged and costs only a repeat at order-sign."""
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
        with self._lock:
            if self._closed or len(self._queue) + len(rows) > MAX_QUEUED_ROWS:
                self.dropped += len(rows)
                log.warning(
                    "order-select cards not remembered (%s); order-sign will show them again",
                    "the memory is closed" if self._closed else "its write queue is full",
                )
                return
            self._queue.extend(rows)
            self._queued += len(rows)
            self._pending[scope] += len(rows)
            if self._thread is None or not self._thread.is_alive():  # first row, or it died
                self._thread = threading.Thread(
                    target=self._run, name="repeat-memory-writer", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def flush(self, timeout_s: float = FLUSH_BEFORE_READ_S, scope: str | None = None) -> bool:
        """Wait until the rows queued before this call (of ``scope`` only, if given) are
        written or their write failed; False after ``timeout_s``, or at once without a writer."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target = self._queued

            def waiting() -> bool:
                return bool(self._pending[scope]) if scope is not None else self._done < target

            self._urgent += 1
            self._changed.notify_all()
            try:
                while waiting():
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._changed.wait(timeout=left)
            finally:
                self._urgent -= 1
        return True

    def close(self) -> None:
        """Write what is queued and stop the writer (worker exit). A second call does nothing
        more; a row remembered after it is dropped, and said so in the log."""
        self.flush()
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._changed.wait()
                if not self._queue:
                    return  # closed, and nothing left
                until = time.monotonic() + BATCH_S
                while not (self._urgent or self._closed) and (left := until - time.monotonic()) > 0:
                    self._changed.wait(timeout=left)
                rows, self._queue = self._queue, []
            try:
                self._write(rows)
            except Exception:  # the writer must outlive any failure; the rows cost repeats
                log.exception("order-select cards not remembered (unexpected failure)")
            finally:  # also when the thread itself is stopped: a waiting order-sign goes on
                with self._lock:
                    self._done += len(rows)
                    for row in rows:
                        self._pending[row["scope"]] -= 1
                        if not self._pending[row["scope"]]:
                            del self._pending[row["scope"]]
                    self._changed.notify_all()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            with writing(self.engine) as connection:
                # Visible to every session at commit, without waiting for the WAL flush: a
                # server crash may lose the last rows, which costs only a repeated card.
                _bound(connection, synchronous_commit="off")
                connection.execute(insert(order_select_cards), rows)
                if time.monotonic() >= self._next_purge:
                    self._next_purge = time.monotonic() + min(PURGE_INTERVAL_S, self.window_s)
                    expired = max(row["shown_at"] for row in rows) - self._window
                    connection.execute(
                        delete(order_select_cards).where(order_select_cards.c.shown_at < expired)
                    )
        except SQLAlchemyError as exc:
            log.warning(
                "%d order-select cards not remembered (%s); order-sign will show them again",
                len(rows),
                type(exc).__name__,
            )

    def repeats(self, scope: str | None, cards: Iterable[Card]) -> frozenset[str]:
        """The uuids of the order-sign cards that order-select already showed (to leave out).
        Nothing when the memory cannot be read."""
        candidates = [card for card in cards if _comparable(card)]
        if not self.enabled or scope is None or not candidates:
            return frozenset()
        if not self.flush(scope=scope):
            log.warning(
                "order-select cards of this scope still queued after %.1f s; order-sign may "
                "show them again",
                FLUSH_BEFORE_READ_S,
            )
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


def close_all() -> None:
    """Write every memory's queued rows (gunicorn ``worker_exit``, and at exit)."""
    for memory in list(_MEMORIES):
        memory.close()


atexit.register(close_all)
