"""The objects one running service shares across requests, and the call path of a hook request.

Built once by the app factory. Views hand it validated request data; it picks the FHIR server (only
one on the allowlist), resolves data through the service's handler, records the issued cards and
returns their JSON. Clock and UUID factory are injected so tests can fix them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from cds_service.audit import AuditWriter, patient_key, record_of
from cds_service.cards import Card
from cds_service.config import Settings
from cds_service.errors import UnknownCard, UnknownService
from cds_service.feedback import FeedbackStore, StoredFeedback
from cds_service.fhir.client import Deadline, FhirClient, allowed_entry, is_allowed_server
from cds_service.fhir.prefetch import PrefetchResolver
from cds_service.ids import new_uuid
from cds_service.repeats import RepeatMemory, scope_of
from cds_service.service import CheckBudget, HookCall, ServiceDefinition, ServiceRegistry

log = logging.getLogger(__name__)
DEVIATIONS_EXTENSION = "org.ivig-cds.tolerated-deviations"
FEEDBACK_FIRST_PAUSE_S = 0.05  # feedback for a card not stored yet looks again after this, x2
# Feedback requests of one process waiting for their cards at once; more are refused at once
# (404). A gthread worker has 4 threads: waiters must never hold them all from the hook calls.
FEEDBACK_WAITERS = 2


class Caller(Protocol):
    """The authenticated CDS client (``cds_service.auth.verifier.Client``)."""

    @property
    def iss(self) -> str: ...
    @property
    def fhir_servers(self) -> tuple[str, ...]: ...
    @property
    def ehr_profile(self) -> str | None: ...  # configured for this client (contract §9)
    @property
    def tenant(self) -> str | None: ...  # the token's tenant claim


def utc_now() -> datetime:
    return datetime.now(UTC)


def make_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class ServerPools:
    """A fetch pool per FHIR server (issue 12): a server that answers slowly fills its own pool,
    never another's. Keyed by the server's allowlist entry, so there are at most as many pools
    as entries (and one, "", for calls with no server to fetch from)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def for_server(self, base_url: str) -> ThreadPoolExecutor:
        with self._lock:
            pool = self._pools.get(base_url)
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="fhir")
                self._pools[base_url] = pool
            return pool


@dataclass
class Runtime:
    settings: Settings
    registry: ServiceRegistry
    store: FeedbackStore
    audit: AuditWriter
    session: requests.Session
    clock: Callable[[], datetime] = utc_now
    uuid_factory: Callable[[], str] = new_uuid
    repeats: RepeatMemory | None = None  # order-select -> order-sign memory (contract §7.6)
    pools: ServerPools = field(init=False)
    _feedback_waiters: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.pools = ServerPools(self.settings.fhir_max_workers)
        self._feedback_waiters = threading.BoundedSemaphore(FEEDBACK_WAITERS)

    def store_feedback(self, service_id: str, items: list[dict[str, Any]]) -> StoredFeedback:
        """Store feedback. ``.count`` is how many items were stored; ``.outcomes`` their cards'
        topics and outcomes. A card issued a moment ago may not be in the database yet: queued
        in this process's audit writer (flushed first, as long as that takes: at most 5 s), or
        in another worker's or instance's. That is waited for within ``feedback_wait_s`` of the
        first try (the flush included), by a few reads (50, 100, 200 ms apart and so on), at
        most ``FEEDBACK_WAITERS`` requests of this process at a time; then a card still unknown
        is refused."""
        try:
            return self.store.store_feedback(service_id, items)
        except UnknownCard:
            wait = Deadline(self.settings.feedback_wait_s)
        self.audit.flush()
        if self._feedback_waiters.acquire(blocking=False):
            try:
                self._wait_for_cards(service_id, {item["card"] for item in items}, wait)
            finally:
                self._feedback_waiters.release()
        return self.store.store_feedback(service_id, items)

    def _wait_for_cards(self, service_id: str, uuids: set[str], wait: Deadline) -> None:
        pause = FEEDBACK_FIRST_PAUSE_S
        while self.store.missing_cards(service_id, uuids) and not wait.spent():
            time.sleep(min(pause, wait.remaining()))
            pause *= 2

    def service(self, service_id: str) -> ServiceDefinition:
        service = self.registry.get(service_id)
        if service is None:
            raise UnknownService(f"no CDS service with id {service_id!r}")
        return service

    def call(
        self,
        service: ServiceDefinition,
        request: dict[str, Any],
        caller: Caller | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Run the service and answer the response body; ``caller`` is the authenticated client
        (its FHIR servers only)."""
        allowed_servers = caller.fhir_servers if caller is not None else None
        client, no_client_reason = self._client_for(request, allowed_servers)
        data = PrefetchResolver(
            specs=service.prefetch,
            prefetch=request.get("prefetch") or {},
            context=request["context"],
            client=client,
            no_client_reason=no_client_reason,
            deadline=Deadline(self.settings.request_budget_s),
            executor=self.pools.for_server(
                allowed_entry(request.get("fhirServer") or "", self.settings.allowed_fhir_servers)
                or ""
            ),
        )
        now = self.clock()
        call = HookCall(
            service=service,
            hook_instance=request["hookInstance"],
            context=request["context"],
            now=now,
            data=data,
            new_uuid=self.uuid_factory,
            extension=request.get("extension") or {},
            ehr_profile=caller.ehr_profile if caller is not None else None,
            fhir_server=request.get("fhirServer"),
            check_budget=CheckBudget(
                self.settings.check_budget_s, lambda: Deadline(self.settings.check_budget_s).spent
            ),
        )
        answer = service.handler(call)
        mode = self.settings.mode
        suppressed = self._repeated(service.hook, request, caller, answer.cards, mode)
        cards = [card for card in answer.cards if card.uuid not in suppressed]
        self.audit.submit(
            record_of(
                service.id,
                call.hook_instance,
                answer.cards,
                now,
                self.registry.knowledge_version,
                request_id,
                caller.iss if caller is not None else None,
                answer.audit_notes + answer.audit_only,
                suppressed,
                hook=service.hook,
                mode=mode,
                patient_key=patient_key(call.fhir_server, call.context.get("patientId")),
            )
        )
        log.info(
            "hook %s instance=%s cards=%s suppressed=%d mode=%s",
            service.id,
            call.hook_instance,
            ",".join(f"{card.topic}:{card.indicator}" for card in cards) or "none",
            len(suppressed),
            mode,
            extra={"service": service.id, "topics": [card.topic for card in cards]},
        )
        if mode == "shadow":  # recorded above, with the audit; never shown
            return {"cards": []}
        response: dict[str, Any] = {"cards": [card.to_json() for card in cards]}
        if answer.audit_notes:  # tolerated client deviations, for the EHR team (contract §9)
            response["extension"] = {DEVIATIONS_EXTENSION: list(answer.audit_notes)}
        return response

    def _repeated(
        self,
        hook: str,
        request: dict[str, Any],
        caller: Caller | None,
        cards: list[Card],
        mode: str,
    ) -> frozenset[str]:
        """Contract §7.6: order-select's cards are remembered; of order-sign's, the uuids of
        those order-select showed already (left out of the answer, audited as suppressed)."""
        if self.repeats is None or hook not in ("order-select", "order-sign"):
            return frozenset()
        scope = scope_of(
            request["context"],
            request.get("fhirServer"),
            caller.iss if caller is not None else None,
            caller.tenant if caller is not None else None,
            mode,
        )
        if hook == "order-select":
            self.repeats.remember(scope, cards)
            return frozenset()
        return self.repeats.repeats(scope, cards)

    def _client_for(
        self, request: dict[str, Any], allowed_servers: tuple[str, ...] | None = None
    ) -> tuple[FhirClient | None, str]:
        """``allowed_servers``: the authenticated client's FHIR servers, which apply on top of the
        operator's allowlist (a server must be on both); None: the allowlist alone."""
        server = request.get("fhirServer")
        if not server:
            return None, "the request names no fhirServer"
        if not is_allowed_server(server, self.settings.allowed_fhir_servers):
            log.warning(
                "refused fhirServer %s: not on IVIG_CDS_ALLOWED_FHIR_SERVERS", _loggable(server)
            )
            return None, f"fhirServer {server} is not an allowed FHIR server"
        if allowed_servers is not None and not is_allowed_server(server, allowed_servers):
            log.warning(
                "refused fhirServer %s: not one of the client's FHIR servers", _loggable(server)
            )
            return None, f"fhirServer {server} is not an allowed FHIR server"
        token = (request.get("fhirAuthorization") or {}).get("access_token")
        return (
            FhirClient(
                server,
                session=self.session,
                token=token,
                timeout_s=self.settings.fhir_timeout_s,
                max_pages=self.settings.fhir_max_pages,
                max_response_bytes=self.settings.fhir_max_response_bytes,
                max_resources=self.settings.fhir_max_resources,
            ),
            "",
        )


def _loggable(url: object) -> str:
    """A URL for the log: scheme, host and path only. A query or userinfo can carry a patient id
    or a credential, and a control character could forge a log line."""
    try:
        parts = urlsplit(str(url))
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    except ValueError:
        shown = "(not a URL)"
    return "".join(c for c in shown if c.isprintable())[:200]
