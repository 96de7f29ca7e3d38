"""The IVIG CDS services: one per hook; discovery text and prefetch templates from the registry.

Every handler is: resolve data → build the context → evaluate → make cards. The order hooks look
at the orders in focus first (reading from the FHIR server only the Medications those orders point
to) and answer ``{"cards": []}`` without touching patient data when no immune globulin or plasma
exchange is ordered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.config import ConfigError
from cds_service.service import Answer, HookCall, ServiceDefinition
from hooks.card_builder import PROFILES, Profile, make_cards
from hooks.composer import compose
from hooks.context import Focus, Session, build_context, focus_of, read_session
from hooks.engine import Settings, evaluate
from hooks.knowledge_base import KnowledgeBase

EPIC_EXTENSION = "com.epic.cdshooks.request."


@dataclass(frozen=True)
class ServiceOptions:
    """How inputs are read: ``IVIG_CDS_STRICT_FHIR``, ``IVIG_CDS_MAX_RESOURCES_PER_CALL``."""

    strict_fhir: bool = False  # validate every input resource with the R4B models and report
    max_resources_per_call: int = 5000
    # ``IVIG_CDS_EHR_PROFILE``: what suggestions the EHR can take (contract §7.8); a request that
    # carries Epic's own ``com.epic.cdshooks.request.*`` extensions is answered as ``epic``.
    ehr_profile: str = "standard"

    def validate(self) -> None:
        if self.ehr_profile not in PROFILES:
            raise ConfigError(
                f"IVIG_CDS_EHR_PROFILE: expected one of {', '.join(PROFILES)}, "
                f"got {self.ehr_profile!r}"
            )

    def profile_for(self, extension: Mapping[str, Any]) -> Profile:
        if any(key.startswith(EPIC_EXTENSION) for key in extension):
            return "epic"
        return "epic" if self.ehr_profile == "epic" else "standard"


@dataclass(frozen=True)
class Checker:
    """The handler of one service: the same pipeline for every hook."""

    kb: KnowledgeBase
    settings: Settings
    options: ServiceOptions

    def __call__(self, call: HookCall) -> Answer:
        session = read_session(call.service.hook, call.context)
        focus = self._focus(session, call)
        if call.service.hook != "patient-view" and focus.empty:
            return Answer([])
        data = call.data.resolve()
        specs = {spec.key: spec for spec in call.service.prefetch}
        gaps = {
            key: f"{why}. Checks affected: {specs[key].needed_for}" if key in specs else why
            for key, why in data.gaps.items()
        }
        ctx = build_context(
            session,
            focus,
            data.resources,
            gaps,
            self.kb,
            call.now.date(),
            strict=self.options.strict_fhir,
            max_resources=self.options.max_resources_per_call,
        )
        findings = evaluate(ctx, self.kb, self.settings)
        plans = compose(findings, ctx, self.kb, self.settings)
        profile = self.options.profile_for(call.extension)
        cards = make_cards(plans, ctx, self.kb, call.new_uuid, profile)
        return Answer(cards, ctx.deviation_notes)

    def _focus(self, session: Session, call: HookCall) -> Focus:
        wanted = session.references_to_read()
        read: dict[str, dict[str, Any]] = call.data.read_many(wanted) if wanted else {}
        medications = {ref: r for ref, r in read.items() if r.get("resourceType") == "Medication"}
        return focus_of(session, medications, self.kb)


def build_services(
    kb: KnowledgeBase, settings: Settings, options: ServiceOptions
) -> list[ServiceDefinition]:
    checker = Checker(kb, settings, options)
    titles = {
        "order-select": ("ivig-order-select", "Immune globulin (IVIG/SCIG) order safety check"),
        "order-sign": (
            "ivig-order-sign",
            "Immune globulin (IVIG/SCIG) order safety check at signing",
        ),
        "patient-view": ("ivig-patient-view", "Immune globulin monitoring when a chart is opened"),
    }
    rules = settings.rules
    return [
        ServiceDefinition(
            id=service_id,
            hook=hook,
            title=title,
            description=rules.description(hook),
            prefetch=rules.prefetch(hook, kb),
            handler=checker,
            usage_requirements=rules.usage_requirements(hook, kb),
        )
        for hook, (service_id, title) in titles.items()
        if hook in rules.hooks()
    ]
