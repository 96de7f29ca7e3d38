"""Turn findings into CDS Hooks cards (contract §5): evidence, source, suggestions with complete
FHIR resources, each validated with the R4B models before it is offered.

A suggestion whose resource would not be valid FHIR R4 (a client order malformed in an element the
service echoes back) is not offered, and the card says why. Tolerated client deviations are said
once, as the last line of the first card's detail, for the EHR team.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cds_service.cards import SUMMARY_MAX, Action, Card, Coding, Source, Suggestion
from hooks.context.model import ClinicalContext, IgOrder
from hooks.fhir_models import validation_error
from hooks.findings import (
    CreateOrder,
    Finding,
    OrderChange,
    Proposal,
    ProposedAction,
    RemoveOrder,
    ReviseOrder,
)
from hooks.knowledge_base import KnowledgeBase
from hooks.resources import Unrevisable, created, revised


class NotOffered(ValueError):
    """A proposed action whose resource is not valid FHIR R4."""


@dataclass
class CardMaker:
    ctx: ClinicalContext
    kb: KnowledgeBase
    new_uuid: Callable[[], str]
    _orders: dict[str, IgOrder] = field(init=False)
    _revised: dict[tuple[str, tuple[OrderChange, ...]], tuple[dict[str, Any], str | None]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._orders = {order.reference: order for order in self.ctx.ig_orders}

    def cards(self, findings: tuple[Finding, ...]) -> list[Card]:
        made = [self.card(finding) for finding in findings]
        notes = self.ctx.deviation_notes
        if made and notes:
            first = made[0]
            line = f"\n\nNote for the EHR team: {'; '.join(notes)}; read as a list of one."
            made[0] = replace(first, detail=(first.detail or "") + line)
        return made

    def card(self, finding: Finding) -> Card:
        order = self._orders.get(finding.order) if finding.order else None
        source = self._source(finding, order)
        suggestions, not_offered = [], []
        for proposal in finding.proposals:
            try:
                actions = tuple(self._action(action) for action in proposal.actions)
            except NotOffered as exc:
                not_offered.append(f"Not offered: {proposal.label} ({exc})")
                continue
            suggestions.append(self._suggestion(proposal, actions))
        summary = finding.summary
        if len(summary) > SUMMARY_MAX:
            summary = summary[: SUMMARY_MAX - 1].rstrip() + "…"
        indicator = finding.indicator
        return Card(
            uuid=self.new_uuid(),
            summary=summary,
            indicator=indicator,
            source=source,
            detail=_detail(finding, order, source, not_offered),
            suggestions=tuple(suggestions),
            selection_behavior=finding.selection if suggestions else None,
            override_reasons=self._override_reasons(finding) if indicator != "info" else (),
        )

    def _source(self, finding: Finding, order: IgOrder | None) -> Source:
        topic = self.kb.topics[finding.topic]
        label, url = topic.source.label, topic.source.url
        if topic.productLabel and order is not None and order.product is not None:
            label, url = f"{label}; {order.product.source.label}", order.product.source.url
        if finding.source is not None:
            label, url = finding.source
        coding = Coding(self.kb.topic_system, finding.topic, topic.display)
        return Source(label=label, url=url, topic=coding)

    def _override_reasons(self, finding: Finding) -> tuple[Coding, ...]:
        system, reasons = self.kb.override_reason_system, self.kb.override_reasons
        return tuple(
            Coding(system, code, reasons[code])
            for code in self.kb.topics[finding.topic].overrideReasons
        )

    def _suggestion(self, proposal: Proposal, actions: tuple[Action, ...]) -> Suggestion:
        return Suggestion(
            label=proposal.label,
            uuid=self.new_uuid(),
            actions=actions,
            is_recommended=True if proposal.recommended else None,
        )

    def _action(self, action: ProposedAction) -> Action:
        if isinstance(action, RemoveOrder):
            return Action("delete", action.description, resource_id=action.order)
        if isinstance(action, CreateOrder):
            orderable = self.kb.orderables[action.orderable]
            resource = created(
                orderable, self.ctx.patient.reference, self.ctx.today, action.for_order, action.why
            )
            self._check_created(action, resource)
            return Action("create", f"Order {orderable.code.text}", resource=resource)
        assert isinstance(action, ReviseOrder)
        key = (action.order, action.changes)  # the same revision on two cards: built once
        if key not in self._revised:
            try:
                resource = revised(self._orders[action.order], action.changes)
            except Unrevisable as exc:
                raise NotOffered(
                    f"the order's {exc} is not in its FHIR R4 form, so it cannot be revised"
                ) from None
            self._revised[key] = (resource, validation_error(resource))
        resource, why = self._revised[key]
        if why is not None:
            raise NotOffered(f"the resource would not be valid FHIR R4: {why}")
        return Action("update", action.description, resource=resource)

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


def _detail(finding: Finding, order: IgOrder | None, source: Source, not_offered: list[str]) -> str:
    lines = []
    if order is not None:
        lines.append(
            f"**Order:** {order.product_name} ({order.reference}), "
            f"{order.route}: {order.route_basis}; recognised by {order.matched_by}."
        )
        lines.append("")
    lines.append("**Evidence**")
    lines.extend(f"- {item}" for item in finding.evidence)
    lines += ["", f"**Recommendation:** {finding.recommendation}"]
    notes = (*finding.notes, *not_offered)
    if notes:
        lines += ["", "**Notes**"]
        lines.extend(f"- {note}" for note in notes)
    lines += ["", f"**Source:** [{source.label}]({source.url})"]
    return "\n".join(lines)


def make_cards(
    findings: tuple[Finding, ...],
    ctx: ClinicalContext,
    kb: KnowledgeBase,
    new_uuid: Callable[[], str],
) -> list[Card]:
    return CardMaker(ctx, kb, new_uuid).cards(findings)
