"""The IVIG CDS services: one per hook; discovery text and prefetch templates from the registry.

Every handler is: resolve data → build the context → evaluate → make cards. The order hooks look
at the orders in focus first (reading from the FHIR server only the Medications those orders point
to) and answer ``{"cards": []}`` without touching patient data when no immune globulin or plasma
exchange is ordered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds_service.cards import Coding
from cds_service.config import ConfigError
from cds_service.service import Answer, HookCall, ServiceDefinition
from hooks.card_builder import PROFILES, Profile, make_cards
from hooks.composer import compose
from hooks.context import Focus, Session, build_context, focus_of, read_session
from hooks.context.model import ClinicalContext
from hooks.engine import Settings, evaluate_within
from hooks.findings import Finding
from hooks.knowledge_base import KnowledgeBase
from hooks.rules.data_incomplete import not_checked

EPIC_EXTENSION = "com.epic.cdshooks.request."


@dataclass(frozen=True)
class ServiceOptions:
    """How inputs are read: ``IVIG_CDS_STRICT_FHIR``, ``IVIG_CDS_MAX_RESOURCES_PER_CALL``."""

    strict_fhir: bool = False  # validate every input resource with the R4B models and report
    max_resources_per_call: int = 5000
    # ``IVIG_CDS_EHR_PROFILE``: what suggestions the EHR can take (contract §7.8); a request that
    # carries Epic's own ``com.epic.cdshooks.request.*`` extensions is answered as ``epic``.
    ehr_profile: str = "standard"
    # ``IVIG_CDS_EPIC_PRODUCT_CODES``: the site's preference-list codes of immune globulin
    # products, JSON ``{"<product id>": {"system": "...", "code": "...", "display": "..."}}``;
    # an Epic "Order <product>" is coded by it, else by a verified RxNorm code (§7.8).
    epic_product_codes: str = ""

    def validate(self) -> None:
        if self.ehr_profile not in PROFILES:
            raise ConfigError(
                f"IVIG_CDS_EHR_PROFILE: expected one of {', '.join(PROFILES)}, "
                f"got {self.ehr_profile!r}"
            )
        self.product_codes()  # refuses to start on a malformed value

    def product_codes(self, known: frozenset[str] | None = None) -> dict[str, Coding]:
        """The preference-list codes by product id; ``known``: the catalogue's product ids."""
        if not self.epic_product_codes.strip():
            return {}
        where = "IVIG_CDS_EPIC_PRODUCT_CODES"
        try:
            entries = json.loads(self.epic_product_codes)
        except ValueError as error:
            raise ConfigError(f"{where}: not JSON ({error})") from None
        if not isinstance(entries, dict):
            raise ConfigError(f"{where}: expected an object of product id -> coding")
        codes = {}
        for product_id, coding in entries.items():
            if known is not None and product_id not in known:
                raise ConfigError(f"{where}: {product_id!r} is not a catalogue product id")
            if not (
                isinstance(coding, dict)
                and all(isinstance(coding.get(k), str) and coding[k] for k in ("system", "code"))
            ):
                raise ConfigError(f"{where}: {product_id}: needs a system and a code")
            display = coding.get("display")
            codes[product_id] = Coding(
                coding["system"], coding["code"], display if isinstance(display, str) else None
            )
        return codes

    def profile_for(self, extension: Mapping[str, Any], configured: str | None = None) -> Profile:
        """The client's configured profile (its trusted-issuer entry), else Epic's own request
        extensions, else the service's setting (card contract §9, "Profile per client")."""
        chosen = configured
        if chosen is None and any(key.startswith(EPIC_EXTENSION) for key in extension):
            chosen = "epic"
        return "epic" if (chosen or self.ehr_profile) == "epic" else "standard"


@dataclass(frozen=True)
class Checker:
    """The handler of one service: the same pipeline for every hook."""

    kb: KnowledgeBase
    settings: Settings
    options: ServiceOptions
    product_codes: Mapping[str, Coding]  # the site's Epic preference-list codes

    def __call__(self, call: HookCall) -> Answer:
        session = read_session(call.service.hook, call.context, call.fhir_server)
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
        findings = self._evaluate(ctx, call)
        plans = compose(findings, ctx, self.kb, self.settings)
        profile = self.options.profile_for(call.extension, call.ehr_profile)
        cards = make_cards(plans, ctx, self.kb, call.new_uuid, profile, self.product_codes)
        ignored = (
            ("Ignored as another patient's data: " + ", ".join(ctx.other_patient),)
            if ctx.other_patient
            else ()
        )
        return Answer(cards, ctx.deviation_notes, ignored)

    def _evaluate(self, ctx: ClinicalContext, call: HookCall) -> tuple[Finding, ...]:
        """The checks, within their time budget; an order it left unchecked is named on the
        data card (and no revised order is offered on any card), never passed over in silence."""
        result = evaluate_within(ctx, self.kb, self.settings, call.check_budget.start())
        if not result.unchecked:
            return result.findings
        names = {o.reference: o.product_name for o in ctx.ig_orders}
        unchecked = tuple((ref, names.get(ref, "plasma exchange")) for ref in result.unchecked)
        total = len(ctx.ig_orders) + len(ctx.plasma_exchange_orders)
        # First: the composer leads a data card with its first finding.
        return not_checked(unchecked, total, call.check_budget.seconds) + result.findings

    def _focus(self, session: Session, call: HookCall) -> Focus:
        wanted = session.references_to_read()
        read: dict[str, dict[str, Any]] = call.data.read_many(wanted) if wanted else {}
        medications = {ref: r for ref, r in read.items() if r.get("resourceType") == "Medication"}
        return focus_of(session, medications, self.kb)


def build_services(
    kb: KnowledgeBase, settings: Settings, options: ServiceOptions
) -> list[ServiceDefinition]:
    known = frozenset(p.id for p in kb.catalogue.products)
    checker = Checker(kb, settings, options, options.product_codes(known))
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
