"""What a CDS service is, independent of HTTP: its discovery entry, prefetch templates and handler.

A handler receives a :class:`HookCall` and returns an :class:`Answer`: the cards, and notes for
the audit record (client deviations the service tolerated; the ids of another patient's
resources, which were ignored). It asks ``call.data`` for patient data
only when it needs it, so a call with nothing to check answers without touching prefetch or a FHIR
server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cds_service.cards import Card


@dataclass(frozen=True)
class PrefetchSpec:
    """One prefetch template. ``essential`` data missing means 412; other gaps become a card."""

    key: str
    template: str
    needed_for: str
    essential: bool = False


@dataclass(frozen=True)
class ResolvedData:
    """Raw FHIR resources per prefetch key, and why any key is missing or incomplete."""

    resources: Mapping[str, list[dict[str, Any]]]
    gaps: Mapping[str, str]


class DataSource(Protocol):
    def resolve(self) -> ResolvedData:
        """Resolve every prefetch key: prefetched, fetched from the FHIR server, or a gap."""
        ...

    def read_many(self, references: list[str]) -> dict[str, dict[str, Any]]:
        """Read resources (``Type/id``) from the FHIR server, in parallel; those that cannot be
        had are left out."""
        ...


@dataclass(frozen=True)
class HookCall:
    service: ServiceDefinition
    hook_instance: str
    context: Mapping[str, Any]
    now: datetime
    data: DataSource
    new_uuid: Callable[[], str]
    extension: Mapping[str, Any] = field(default_factory=dict)  # the request's own extensions
    ehr_profile: str | None = None  # the authenticated client's configured EHR profile
    fhir_server: str | None = None  # the request's fhirServer (absolute references under it)
    # The checks' time budget (IVIG_CDS_CHECK_BUDGET_S), after the FHIR work's own.
    check_budget: CheckBudget = field(default_factory=lambda: CheckBudget(float("inf"), _no_end))


@dataclass(frozen=True)
class CheckBudget:
    seconds: float
    # Starts the clock when the checks start; what it returns says True once the time is up.
    start: Callable[[], Callable[[], bool]]


def _no_end() -> Callable[[], bool]:
    return lambda: False


@dataclass(frozen=True)
class Answer:
    cards: list[Card]
    audit_notes: tuple[str, ...] = ()  # for the audit and the response's extension
    audit_only: tuple[str, ...] = ()  # for the audit record alone (another patient's ids)


Handler = Callable[[HookCall], Answer]


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[PrefetchSpec, ...]
    handler: Handler
    usage_requirements: str | None = None

    def discovery_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": {spec.key: spec.template for spec in self.prefetch},
        }
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        return entry


class ServiceRegistry:
    """The services this server hosts, by id. Discovery and dispatch both read it."""

    def __init__(
        self,
        services: list[ServiceDefinition],
        knowledge_version: str = "",
        order_choices: Mapping[str, Any] | None = None,
    ) -> None:
        ids = [service.id for service in services]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate service ids: {ids}")
        self._by_id = {service.id: service for service in services}
        self.knowledge_version = knowledge_version  # recorded with every hook call
        # What an order form may offer (products, routes, reasons): the demo page's orderables.
        self.order_choices: Mapping[str, Any] = order_choices or {}

    def get(self, service_id: str) -> ServiceDefinition | None:
        return self._by_id.get(service_id)

    def __iter__(self) -> Iterator[ServiceDefinition]:
        return iter(self._by_id.values())
