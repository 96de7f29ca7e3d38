"""Turn the composer's card plans into CDS Hooks cards (contract §5, §7): evidence, sources,
suggestions with complete FHIR resources (each validated with the R4B models before it is
offered), in the EHR profile in force.

Profiles (contract §7.8): ``standard`` uses create, update and delete as CDS Hooks 2.0 allows.
``epic`` follows Epic's published limits: create and delete only, one action per suggestion,
``selectionBehavior`` ``any``; a revision that keeps the product is text (every value written
out), a product switch is "Remove <product>" plus "Order <product>" (coded by a verified RxNorm
code, else not offered), and where the standard profile offers alternatives only the recommended
one is offered.

Text from the record is escaped here (``hooks.text``): Markdown and HTML in ``detail``, plain
text in the summary, labels and descriptions. A tolerated client deviation is said once, as the
last line of the first card's detail, for the EHR team.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from cds_service.cards import SUMMARY_MAX, Action, Card, Coding, Source, Suggestion
from hooks.composer import DO_NOT_GIVE, CardPlan
from hooks.context.model import ClinicalContext, IgOrder
from hooks.fhir_models import validation_error
from hooks.findings import (
    CreateOrder,
    DoseChange,
    Finding,
    OrderChange,
    ProductChange,
    Proposal,
    ProposedAction,
    RemoveOrder,
    ReviseOrder,
)
from hooks.knowledge_base import KnowledgeBase
from hooks.knowledge_base.schema import Product
from hooks.order_values import entry_values
from hooks.resources import Unrevisable, created, revised
from hooks.revision import Revision, describe
from hooks.text import markdown, plain, record

Profile = Literal["standard", "epic"]
PROFILES: tuple[Profile, ...] = ("standard", "epic")
FINDINGS_EXTENSION = "org.ivig-cds.findings"  # the finding codes a card holds (contract §7.2)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


class NotOffered(ValueError):
    """A proposed action whose resource is not valid FHIR R4."""


@dataclass
class CardMaker:
    ctx: ClinicalContext
    kb: KnowledgeBase
    new_uuid: Callable[[], str]
    profile: Profile = "standard"
    product_codes: Mapping[str, Coding] = field(default_factory=dict)  # Epic preference list
    _orders: dict[str, IgOrder] = field(init=False)
    _drafts: set[str] = field(init=False)
    _revised: dict[tuple[str, tuple[OrderChange, ...]], tuple[dict[str, Any], str | None]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._orders = {order.reference: order for order in self.ctx.ig_orders}
        self._drafts = {order.reference for order in self.ctx.session_orders}

    def cards(self, plans: tuple[CardPlan, ...]) -> list[Card]:
        for plan in plans:  # the composer built the revised orders already: not twice
            for revision in plan.revisions:
                if revision.resource is not None:
                    key = (revision.order.reference, revision.changes)
                    self._revised[key] = (revision.resource, validation_error(revision.resource))
        made = [self.card(plan) for plan in plans]
        notes = self.ctx.deviation_notes
        if made and notes:
            first = made[0]
            line = f"\n\nNote for the EHR team: {'; '.join(notes)}; read as a list of one."
            made[0] = replace(first, detail=(first.detail or "") + line)
        return made

    def card(self, plan: CardPlan) -> Card:
        lead = plan.findings[0]
        order = self._orders.get(lead.order) if lead.order else None
        source = self._source(plan, order)
        suggestions, not_offered, text_only = self._suggestions(plan)
        indicator = plan.indicator
        resources = [r.resource for r in plan.course_revisions]
        return Card(
            uuid=self.new_uuid(),
            summary=plain(lead.summary, SUMMARY_MAX),
            indicator=indicator,
            source=source,
            detail=self._detail(plan, source, [*text_only, *not_offered]),
            suggestions=tuple(suggestions),
            selection_behavior=self._selection(plan) if suggestions else None,
            override_reasons=self._override_reasons(plan) if indicator != "info" else (),
            extension={
                FINDINGS_EXTENSION: [
                    {"code": f.topic, "indicator": f.indicator} for f in plan.findings
                ]
            },
            digest=_digest(plan),
            orders=tuple(
                dict.fromkeys(
                    [
                        *self._about(plan),
                        *(fingerprint(resource) for resource in resources if resource),
                    ]
                )
            ),
        )

    def _about(self, plan: CardPlan) -> list[str]:
        """The fingerprints of the orders a card is about: its course's, else (a card about the
        patient or a plasma exchange) every order in focus."""
        if plan.course:
            return [fingerprint(self._orders[r].order.raw) for r in plan.course]
        about = [fingerprint(order.order.raw) for order in self.ctx.ig_orders]
        exchanges = sorted(o.code.label for o in self.ctx.plasma_exchange_orders if o.code)
        if exchanges:
            about.append(_hash({"plasmaExchange": exchanges}))  # by what they order
        return about

    def _selection(self, plan: CardPlan) -> Literal["at-most-one", "any"]:
        return "any" if self.profile == "epic" else plan.selection

    def _source(self, plan: CardPlan, order: IgOrder | None) -> Source:
        lead = plan.findings[0]
        topic = self.kb.topics[lead.topic]
        label, url = topic.source.label, topic.source.url
        if topic.productLabel and order is not None and order.product is not None:
            label, url = f"{label}; {order.product.source.label}", order.product.source.url
        if lead.source is not None:
            label, url = lead.source
        display = f"{plan.group.display} ({plan.indicator})"
        coding = Coding(self.kb.topic_system, plan.topic_code, display)
        return Source(label=label, url=url or None, topic=coding)

    def _override_reasons(self, plan: CardPlan) -> tuple[Coding, ...]:
        system, reasons = self.kb.override_reason_system, self.kb.override_reasons
        codes = dict.fromkeys(
            code for f in plan.findings for code in self.kb.topics[f.topic].overrideReasons
        )
        return tuple(Coding(system, code, reasons[code]) for code in codes)

    # -- suggestions ----------------------------------------------------------------------

    def _suggestions(self, plan: CardPlan) -> tuple[list[Suggestion], list[str], list[str]]:
        """The card's suggestions, what could not be offered, and (Epic) what is text only."""
        suggestions: list[Suggestion] = []
        not_offered: list[str] = []
        text_only: list[str] = []
        proposals = plan.proposals
        if self.profile == "epic" and plan.selection == "at-most-one":
            proposals = tuple(p for p in proposals if p.recommended) or proposals[:1]
        for proposal in proposals:
            if self.profile == "epic":
                epic, texts = self._epic(proposal)
                text_only += texts
            else:
                epic = [proposal]
            for one in epic:
                try:
                    actions = tuple(self._action(action) for action in one.actions)
                except NotOffered as exc:
                    not_offered.append(f"Not offered: {plain(one.label)} ({exc})")
                    continue
                suggestions.append(self._suggestion(one, actions))
        return suggestions, not_offered, text_only

    def _epic(self, proposal: Proposal) -> tuple[list[Proposal], list[str]]:
        """Epic: create and delete only, one action each; other changes become text."""
        offered: list[Proposal] = []
        texts: list[str] = []
        for action in proposal.actions:
            if isinstance(action, CreateOrder):
                offered.append(Proposal(proposal.label, (action,), proposal.recommended))
            elif isinstance(action, RemoveOrder):
                if action.order in self._drafts or action.order in self._orders:
                    offered.append(Proposal(proposal.label, (action,), proposal.recommended))
                else:  # an order on record: Epic removes drafts of this session only
                    texts.append(f"{action.description} ({record(action.order)}).")
            else:
                offered_switch, text = self._epic_revision(action, proposal.recommended)
                offered += offered_switch
                texts.append(text)
        return offered, texts

    def _epic_revision(self, action: ReviseOrder, recommended: bool) -> tuple[list[Proposal], str]:
        order = self._orders[action.order]
        values = entry_values(order, action.changes)
        product = next((c.product for c in action.changes if isinstance(c, ProductChange)), None)
        if product is None:
            changes = "; ".join(describe(c) for c in action.changes)
            return (
                [],
                f"Change the {order.product_name} order ({record(order.reference)}): "
                f"{changes}. Enter: {values}.",
            )
        remove = RemoveOrder(order.reference, f"Remove the {order.product_name} order")
        create = CreateOrder("", f"replaces {order.product_name}; enter: {values}", product=product)
        return [
            Proposal(f"Remove {order.product_name}", (remove,), recommended),
            Proposal(f"Order {product.brand}", (create,), recommended),
        ], f"Switch {order.product_name} to {product.brand} (remove, then order); enter: {values}."

    def _suggestion(self, proposal: Proposal, actions: tuple[Action, ...]) -> Suggestion:
        return Suggestion(
            label=plain(proposal.label, 200),
            uuid=self.new_uuid(),
            actions=actions,
            is_recommended=True if proposal.recommended else None,
        )

    def _action(self, action: ProposedAction) -> Action:
        if isinstance(action, RemoveOrder):
            return Action("delete", plain(action.description), resource_id=action.order)
        if isinstance(action, CreateOrder):
            if action.product is not None:
                return self._create_product(action, action.product)
            orderable = self.kb.orderables[action.orderable]
            resource = created(
                orderable,
                self.ctx.patient.reference,
                self.ctx.today,
                action.for_order,
                action.why,
                volume_ml=action.volume_ml,
                rate_ml_h=action.rate_ml_h,
            )
            self._check_created(action, resource)
            return Action("create", f"Order {orderable.named}", resource=resource)
        resource = self._revise(action.order, action.changes)
        return Action("update", plain(action.description), resource=resource)

    def _create_product(self, action: CreateOrder, product: Product) -> Action:
        """Epic: a new order of the product, coded by a verified RxNorm code; its dose details
        come from Epic's own defaults, so the description says which values to enter."""
        preferred = self.product_codes.get(product.id)
        codings = (
            [preferred]
            if preferred is not None
            else [
                Coding(c.system, c.code)
                for c in product.codings
                if c.system == RXNORM and not c.unverified
            ]
        )
        if not codings:
            raise NotOffered(
                "no site preference-list code (IVIG_CDS_EPIC_PRODUCT_CODES) and no verified "
                f"RxNorm code for {product.brand}"
            )
        resource = {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "subject": {"reference": self.ctx.patient.reference},
            "authoredOn": self.ctx.today.isoformat(),
            "medicationCodeableConcept": {
                "coding": [c.to_json() for c in codings],
                "text": product.brand,
            },
            "note": [{"text": plain(action.why)}],
        }
        why = validation_error(resource)
        if why is not None:
            raise NotOffered(f"the resource would not be valid FHIR R4: {why}")
        return Action(
            "create", plain(f"Order {product.brand}; {action.why}", 400), resource=resource
        )

    def _revise(self, reference: str, changes: tuple[OrderChange, ...]) -> dict[str, Any]:
        key = (reference, changes)  # built once per call (the composer's, when it made it)
        if key not in self._revised:
            try:
                resource = revised(self._orders[reference], changes)
            except Unrevisable as exc:
                raise NotOffered(
                    f"the order's {exc} is not in its FHIR R4 form, so it cannot be revised"
                ) from None
            self._revised[key] = (resource, validation_error(resource))
        resource, why = self._revised[key]
        if why is not None:
            raise NotOffered(f"the resource would not be valid FHIR R4: {why}")
        return resource

    def _check_created(self, action: CreateOrder, resource: dict[str, object]) -> None:
        """A created resource is the orderable's template with the patient, the date and the
        order it accompanies filled in: its validity depends on the template, the reason text and
        whether it names an order, so one R4B validation per such shape stands for them all."""
        checked = self.kb.created_checks
        key = (action.orderable, action.why, action.for_order is None)
        why = checked.get(key, "")  # "" is never an error message: not yet checked
        if why == "":
            why = validation_error(resource)
            if len(checked) >= 1024:  # the shapes are few; a bound in case a reason text varies
                checked.clear()
            checked[key] = why
        if why is not None:
            raise NotOffered(f"the resource would not be valid FHIR R4: {why}")

    # -- detail ---------------------------------------------------------------------------

    def _detail(self, plan: CardPlan, source: Source, extra: list[str]) -> str:
        lines: list[str] = []
        orders = [self._orders[reference] for reference in plan.course]
        if len(orders) == 1:
            [order] = orders
            lines.append(
                f"**Order:** {order.product_name} ({record(order.reference)}), "
                f"{order.route}: {order.route_basis}; recognised by {order.matched_by}."
            )
        elif orders:  # a course: one line, not one per day
            products = ", ".join(dict.fromkeys(o.product_name for o in orders))
            references = ", ".join(_at_most([record(o.reference) for o in orders], "in the course"))
            # "checked" only when it is so: an order the checks' budget did not reach was not
            how = "taken" if any(f.not_checked for f in plan.findings) else "checked"
            lines.append(
                f"**Course:** {len(orders)} orders of {products}, {orders[0].route} "
                f"({references}); {how} as one course."
            )
        if orders:
            lines.append("")
        several = len(plan.findings) > 1
        for found in plan.findings:
            if plan.group.code == DO_NOT_GIVE and found.indicator != "critical":
                lines += self._evidence_only(found)  # its advice is moot: not to be given
            else:
                lines += self._finding_lines(found, several)
        # Epic: the changes are text already (what to change, what to enter)
        revision_lines = _revision_lines(plan) if self.profile == "standard" else []
        notes = list(dict.fromkeys([*plan.notes, *extra]))  # a course's orders share notes
        if revision_lines or notes:
            lines += ["**The order**"]
            lines += [f"- {line}" for line in [*revision_lines, *notes]]
            lines.append("")
        sources = dict.fromkeys([_linked(source.label, source.url), *self._other_sources(plan)])
        lines += [f"**Source:** {'; '.join(sources)}"]
        return markdown("\n".join(lines))

    def _evidence_only(self, found: Finding) -> list[str]:
        lines = [f"**Also: {self.kb.topics[found.topic].display}**"]
        lines += _evidence_lines(found)
        lines.append("")
        return lines

    def _finding_lines(self, found: Finding, several: bool) -> list[str]:
        """One finding's part of the detail; blank lines keep Markdown lists apart."""
        lines = []
        if several:
            lines += [f"**{self.kb.topics[found.topic].display}:** {found.summary}", ""]
        lines += ["**Evidence**"]
        lines += _evidence_lines(found)
        lines += ["", f"**Recommendation:** {found.recommendation}", ""]
        if found.notes:
            lines += [f"- Note: {note}" for note in found.notes]
            lines.append("")
        return lines

    def _other_sources(self, plan: CardPlan) -> Iterator[str]:
        for found in plan.findings[1:]:
            if found.source is not None:
                yield _linked(*found.source)
            else:
                topic = self.kb.topics[found.topic].source
                yield _linked(topic.label, topic.url)


def _linked(label: str, url: str | None) -> str:
    return f"[{label}]({url})" if url else label


# Evidence lines a card lists for one finding. A record can hold the same diagnosis thousands of
# times (issue 12: 5,000 Conditions made a 600 kB card): each line is said once, and past this
# many the card says how many more there are. Room for a course's arithmetic (courses.py lists
# ten orders, then the sum) beside a few other lines.
MAX_EVIDENCE_LINES = 20
KEPT_LAST = 6


def _evidence_lines(found: Finding) -> list[str]:
    return [f"- {line}" for line in _at_most(found.evidence, "not listed here")]


def _at_most(lines: Iterable[str], elsewhere: str) -> list[str]:
    """Each line once, and at most MAX_EVIDENCE_LINES: the first ones, how many more, and the
    last KEPT_LAST. Rules list what they found in the record first and their reasoning last (the
    sum, "Warning because of …"): a long record must not push the reasoning off the card."""
    distinct = list(dict.fromkeys(lines))
    more = len(distinct) - MAX_EVIDENCE_LINES
    if more <= 0:
        return distinct
    head = MAX_EVIDENCE_LINES - KEPT_LAST
    return [*distinct[:head], f"… and {more} more, {elsewhere}", *distinct[-KEPT_LAST:]]


def _revision_lines(plan: CardPlan) -> list[str]:
    """What each revised order changes; past the bound, the rest are in the suggestion. A
    product switch first, then a dose change: the one fix that matters must not be the 21st."""
    lines = []
    for revision in sorted(plan.revisions, key=_weight_of_change):
        changes = "; ".join(describe(c) for c in revision.changes)
        lines.append(
            f"Revised order for {revision.order.product_name} "
            f"({record(revision.order.reference)}): {changes}."
        )
    return _at_most(lines, "in the suggestion")


def _weight_of_change(revision: Revision) -> int:
    kinds = {type(change) for change in revision.changes}
    return 0 if ProductChange in kinds else 1 if DoseChange in kinds else 2


def fingerprint(resource: Any) -> str:
    """What makes two orders the same order for the repeat memory (contract §7.6): medication,
    dose, route, timing, rate and reason; not its id or status."""
    if not isinstance(resource, dict):
        return ""
    kept = {
        key: resource.get(key)
        for key in (
            "medicationCodeableConcept",
            "medicationReference",
            "dosageInstruction",
            "reasonCode",
            "reasonReference",
        )
    }
    return _hash(kept)


def _digest(plan: CardPlan) -> str:
    """The card's content for the repeat memory: its findings with their evidence values, and
    why no revised order could be offered; not the summary, which names the product, so a
    product switch accepted at order-select does not bring back the same risk factors. The
    revised order it proposed is matched through ``Card.orders``, so a card seen at order-select
    is not shown again at order-sign once its revised order was accepted (contract §7.6)."""
    return _hash([[(f.topic, f.indicator, f.evidence) for f in plan.findings], plan.withheld])


def _hash(value: Any) -> str:
    """A stable digest of ``value`` (sorted keys; what JSON cannot say, as its ``str``)."""
    encoded = orjson.dumps(
        value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    return hashlib.sha256(encoded).hexdigest()[:32]


def make_cards(
    plans: tuple[CardPlan, ...],
    ctx: ClinicalContext,
    kb: KnowledgeBase,
    new_uuid: Callable[[], str],
    profile: Profile = "standard",
    product_codes: Mapping[str, Coding] | None = None,
) -> list[Card]:
    return CardMaker(ctx, kb, new_uuid, profile, product_codes or {}).cards(plans)
