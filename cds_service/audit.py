"""Audit records off the request's critical path, and never lost.

A hook call's record is appended to this process's spool file (one JSON line, written before the
response goes out; the kernel keeps it if the process dies) and queued. A background thread
writes what is queued to the database in batches (at most 200 records, one transaction each),
then deletes the spool segment those records were in. If the database cannot take a batch, the
records not stored also go to the error log (as before), and their segment is kept as
*pending*: the thread retries pending segments, oldest first, until the database takes them.
When a process starts, it replays the segments of processes that are gone: a live process holds
a lock on each of its segments until their records are stored, so no segment is replayed while
its owner writes or stores it. Replays are idempotent too: a record whose id is already stored
is skipped.

Durability: a record survives a crash of the process (SIGKILL, OOM), as a SQLite commit in WAL
mode does; not a crash of the machine, unless the spool directory is on storage that does.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds_service.ids import new_hex_id

log = logging.getLogger(__name__)

_WRITERS: weakref.WeakSet[AuditWriter] = weakref.WeakSet()
PREFIX = "audit-"  # every segment's name starts so; a pending one's with:
PENDING = "audit-pending-"


@dataclass(frozen=True)
class ShownCard:
    uuid: str
    topic: str | None
    indicator: str
    suggestions: tuple[str, ...]
    # Left out of an order-sign answer: order-select showed it already (contract §7.6).
    suppressed: bool = False
    summary: str = ""  # the card's summary, for the shadow report's example cards


@dataclass(frozen=True)
class AuditRecord:
    """One hook call: what was shown, to whom, under which knowledge (no PHI, no token)."""

    service_id: str
    hook_instance: str
    called_at: str  # ISO 8601, UTC
    knowledge_version: str
    cards: tuple[ShownCard, ...]
    request_id: str | None = None
    client: str | None = None
    notes: tuple[str, ...] = ()
    record_id: str = field(default_factory=new_hex_id)
    hook: str | None = None
    mode: str = "live"  # "shadow": recorded, never shown (IVIG_CDS_MODE)
    patient_key: str | None = None  # a digest, never the id (cds_service.audit.patient_key)

    def to_json(self) -> str:
        # By hand, not dataclasses.asdict: this runs on every hook call, before the answer.
        data = {
            "service_id": self.service_id,
            "hook_instance": self.hook_instance,
            "called_at": self.called_at,
            "knowledge_version": self.knowledge_version,
            "cards": [
                {
                    "uuid": c.uuid,
                    "topic": c.topic,
                    "indicator": c.indicator,
                    "suggestions": c.suggestions,
                    "suppressed": c.suppressed,
                    "summary": c.summary,
                }
                for c in self.cards
            ],
            "request_id": self.request_id,
            "client": self.client,
            "notes": self.notes,
            "record_id": self.record_id,
            "hook": self.hook,
            "mode": self.mode,
            "patient_key": self.patient_key,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> AuditRecord:
        data = json.loads(line)
        data["cards"] = tuple(
            ShownCard(
                c["uuid"],
                c["topic"],
                c["indicator"],
                tuple(c["suggestions"]),
                bool(c.get("suppressed", False)),  # spooled before the flag existed: shown
                c.get("summary", ""),
            )
            for c in data["cards"]
        )
        data["notes"] = tuple(data.get("notes") or ())
        return cls(**data)

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.called_at).astimezone(UTC)


Store = Callable[[list[AuditRecord]], None]  # writes a batch in one transaction, or raises


@dataclass
class Segment:
    """A spool file, and the open descriptor whose lock says "a live process owns it": the
    process that writes a segment holds the lock until the records are stored, so no other
    process replays a segment while it is being written or stored."""

    # Plain strings, not pathlib: pathlib interns each name it parses, and a new name per
    # batch kept growing the interpreter's table of interned strings (seen in `make loadtest`).
    directory: str
    name: str
    fd: int

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.name)

    def read(self) -> list[AuditRecord]:
        """The records, read through the descriptor (the name may have changed meanwhile)."""
        with open(self.fd, encoding="utf-8", closefd=False) as stream:
            stream.seek(0)
            return parse_segment(stream.read(), self.name)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def keep_pending(self) -> None:
        """Rename it to say "not stored yet": whichever process retries first replays it."""
        os.rename(self.path, os.path.join(self.directory, PENDING + self.name[len(PREFIX) :]))

    def release(self) -> None:
        os.close(self.fd)


class Spool:
    """This process's append-only segments of audit records, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self._sequence = 0
        self.current = self._open()

    def _open(self) -> Segment:
        """A new segment, locked before it gets its name: under the name, another process
        could take it for an orphan between its creation and our lock."""
        self._sequence += 1
        name = f"{PREFIX}{os.getpid()}-{time.time_ns()}-{self._sequence}.jsonl"
        os.makedirs(self.directory, exist_ok=True)  # it may have been removed meanwhile
        hidden = os.path.join(self.directory, f".new-{name}")  # claim_orphans ignores it
        fd = os.open(hidden, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(hidden, os.path.join(self.directory, name))
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(hidden)
            raise
        return Segment(self.directory, name, fd)

    def append(self, record: AuditRecord) -> None:
        os.write(self.current.fd, (record.to_json() + "\n").encode())

    def rotate(self) -> Segment:
        """Start a new segment; return the one just closed to new records, still locked (its
        records are about to be stored)."""
        done, self.current = self.current, self._open()
        return done

    def claim_orphans(self) -> Iterator[Segment]:
        """Segments no live process holds, oldest first: pending ones, and those of processes
        that are gone; each locked for the caller, who releases it."""
        try:
            names = [n for n in os.listdir(self.directory) if n.startswith(PREFIX)]
        except FileNotFoundError:
            return  # the directory was removed: nothing to replay (the next segment makes it)
        for name in sorted(names, key=self._modified):
            path = os.path.join(self.directory, name)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Stored (unlinked) or renamed by its owner between our open and our lock?
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    raise FileNotFoundError(path)
            except (BlockingIOError, FileNotFoundError):
                os.close(fd)  # a live process holds it, or it is gone
                continue
            yield Segment(self.directory, name, fd)

    def _modified(self, name: str) -> float:
        try:
            return os.stat(os.path.join(self.directory, name)).st_mtime
        except FileNotFoundError:
            return 0.0  # gone meanwhile; claim_orphans skips it


def parse_segment(text: str, name: str) -> list[AuditRecord]:
    records = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(AuditRecord.from_json(line))
            except (ValueError, KeyError, TypeError):
                # A line cut short by a crash mid-write: the only record that can be lost.
                log.error("audit spool %s: an unreadable line was skipped", name)
    return records


class AuditWriter:
    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        flush_interval_s: float = 0.02,
        retry_interval_s: float = 5.0,
        max_batch: int = 200,
    ) -> None:
        self._store = store
        # Records per transaction, at most: a backlog (the database was slow) is written in
        # steps, so no single statement's parameters take much memory.
        self._max_batch = max_batch
        self._spool = Spool(spool_dir)
        self._flush_interval = flush_interval_s
        self._retry_interval = retry_interval_s
        self._queue: list[AuditRecord] = []
        self._lock = threading.Lock()  # the spool's open segment and the queue change together
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._writing = False
        self._replaying = threading.Lock()
        self._stopped = False
        self._next_retry = 0.0
        self.written = 0  # records stored (metrics)
        self.failed_batches = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        _WRITERS.add(self)

    def spool_writable(self) -> bool:
        """Whether a record could be spooled now (readiness): a file is created, written and
        removed in the spool directory. A full or read-only disk says no."""
        probe = os.path.join(self._spool.directory, f".ready-{os.getpid()}-{time.time_ns()}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"ready\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError:
            return False
        return True

    def submit(self, record: AuditRecord) -> None:
        """Spool and queue one record; returns at once."""
        with self._lock:
            try:
                self._spool.append(record)
            except OSError as exc:  # disk full, spool removed: the queue still has it
                log.error(
                    "audit spool write failed (%s); the record is queued in memory only",
                    exc.strerror or type(exc).__name__,
                )
            self._queue.append(record)
        self._wake.set()

    @property
    def backlog(self) -> int:
        with self._lock:
            return len(self._queue)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every record submitted so far is written (or its batch failed)."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._lock:
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(timeout=left)
        return True

    def close(self) -> None:
        """Write what is queued and stop (worker exit). A second call does nothing."""
        if self._stopped:
            return
        self.flush()
        with self._lock:
            self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
        last = self._spool.current
        try:
            if not self._queue and not last.read():
                last.remove()
        except OSError:
            pass  # the spool directory is gone: there is nothing left to keep
        finally:
            last.release()  # what is left in it, the next process replays

    def _run(self) -> None:
        starting = True
        while not self._stopped:
            try:
                if starting:  # first, the records of processes that are gone
                    starting = False
                    self._replay_orphans()
                self._loop()
            except Exception:
                # The writer must outlive any failure, or queued records would wait forever.
                log.exception("audit writer: unexpected failure; carrying on")
                time.sleep(self._retry_interval)

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(timeout=self._retry_interval)
            self._wake.clear()
            if self._stopped:
                break
            time.sleep(self._flush_interval)  # let a burst of calls share one transaction
            self._write_queued()
            if time.monotonic() >= self._next_retry:
                self._replay_orphans()

    def _write_queued(self) -> None:
        with self._lock:
            if not self._queue:
                return
            batch, self._queue = self._queue, []
            try:
                segment: Segment | None = self._spool.rotate()
            except OSError as exc:  # the records are still in the open segment
                segment = None
                log.error(
                    "audit spool: no new segment (%s); the batch is written without one",
                    exc.strerror or type(exc).__name__,
                )
            self._writing = True
        try:
            self._write(batch, segment)
        finally:
            with self._lock:
                self._writing = False
                self._idle.notify_all()

    def _chunks(self, records: list[AuditRecord]) -> Iterator[list[AuditRecord]]:
        for start in range(0, len(records), self._max_batch):
            yield records[start : start + self._max_batch]

    def _write(self, batch: list[AuditRecord], segment: Segment | None) -> None:
        stored = 0
        try:
            for chunk in self._chunks(batch):
                self._store(chunk)
                stored += len(chunk)
        except Exception as exc:
            self.failed_batches += 1
            self.written += stored
            self._next_retry = time.monotonic() + self._retry_interval
            for record in batch[stored:]:
                log.error(
                    "audit record not stored (%s); kept for retry and logged",
                    type(exc).__name__,
                    extra={"audit": asdict(record)},
                )
            if segment is None:  # no segment of its own: back to the queue, for the next one
                with self._lock:
                    self._queue[:0] = batch[stored:]
                return
            try:  # the whole segment is kept: its replay skips the records already stored
                segment.keep_pending()
            except OSError:
                log.exception("audit spool: %s could not be kept for retry", segment.name)
            finally:
                segment.release()  # now any process may replay it
            return
        self.written += len(batch)
        if segment is not None:
            segment.remove()
            segment.release()

    def _replay_orphans(self) -> None:
        # One replay at a time in this process, whoever calls (the writer's loop, a test): a
        # second caller waits, then finds nothing left, instead of skipping a claimed segment.
        with self._replaying:
            self._replay_claimed()

    def _replay_claimed(self) -> None:
        self._next_retry = time.monotonic() + self._retry_interval
        for segment in self._spool.claim_orphans():
            try:
                records = segment.read()
                for chunk in self._chunks(records):
                    self._store(chunk)
            except Exception as exc:
                log.warning(
                    "audit spool %s not replayed yet (%s)", segment.name, type(exc).__name__
                )
                segment.release()
                return  # the database is still down: try again later, oldest first
            log.info("audit spool %s replayed: %d records", segment.name, len(records))
            self.written += len(records)
            segment.remove()
            segment.release()


def close_all() -> None:
    """Flush every writer of this process (gunicorn ``worker_exit``, and at exit)."""
    for writer in list(_WRITERS):
        writer.close()


atexit.register(close_all)


def record_of(
    service_id: str,
    hook_instance: str,
    cards: list[Any],
    called_at: datetime,
    knowledge_version: str,
    request_id: str | None,
    client: str | None,
    notes: tuple[str, ...],
    suppressed: Collection[str] = frozenset(),
    *,
    hook: str | None = None,
    mode: str = "live",
    patient_key: str | None = None,
) -> AuditRecord:
    """``cards``: every card the service made; ``suppressed``: the uuids of those left out of
    the answer (order-select showed them already); ``mode``: shadow when none was shown."""
    return AuditRecord(
        service_id=service_id,
        hook_instance=hook_instance,
        called_at=called_at.astimezone(UTC).isoformat(),
        knowledge_version=knowledge_version,
        cards=tuple(
            ShownCard(
                c.uuid,
                c.topic,
                c.indicator,
                tuple(s.uuid for s in c.suggestions),
                c.uuid in suppressed,
                c.summary,
            )
            for c in cards
        ),
        request_id=request_id,
        client=client,
        notes=notes,
        hook=hook,
        mode=mode,
        patient_key=patient_key,
    )


def patient_key(fhir_server: str | None, patient_id: object) -> str | None:
    """A pseudonymous key of the patient, so reports can count patients: a digest of the FHIR
    server and patient id, never the id itself (it is not anonymous: whoever knows an id can
    compute its key)."""
    if not isinstance(patient_id, str) or not patient_id:
        return None
    text = f"ivig-cds patient v1\x00{(fhir_server or '').rstrip('/')}\x00{patient_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
