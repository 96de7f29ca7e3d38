"""plasma-exchange-sequencing: plasma exchange removes IVIG just given (EAN/PNS GBS 2023; MSD).

(a) An IVIG order with any plasma-exchange order in the same session (selected or not).
(b) A plasma-exchange order when immune globulin was ordered in the last 14 days (config).
Plasma exchange is a ServiceRequest coded CPT 36514 or named so in its text. Suggestion: delete the
plasma-exchange order (or postpone it).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.cards import Action
from hooks.knowledge_base import KnowledgeBase
from hooks.orders import IgHistory
from hooks.record import PatientRecord, codes_of_json
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput
from hooks.settings import Thresholds

TOPIC = "plasma-exchange-sequencing"


def is_plasma_exchange(resource: dict[str, Any], kb: KnowledgeBase) -> bool:
    if resource.get("resourceType") != "ServiceRequest":
        return False
    codes, texts = codes_of_json(resource.get("code"))
    return kb.valueset("plasma-exchange").match(codes, texts) is not None


def _reference(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _label(resource: dict[str, Any]) -> str:
    codes, texts = codes_of_json(resource.get("code"))
    return texts[0] if texts else (codes[0].label() if codes else "plasma exchange")


def _delete(resource: dict[str, Any]) -> ProposedSuggestion:
    reference = _reference(resource)
    return ProposedSuggestion(
        f"Remove the plasma-exchange order ({reference}); reorder it later if still needed",
        (Action("delete", f"Remove {reference}", resource_id=reference),),
    )


def plasma_exchange_known(inp: RuleInput) -> list[str]:
    """Plasma exchange in this session's orders, or as a procedure in the record."""
    lines = [
        f"{_reference(r)}: {_label(r)} (ordered in this session)"
        for r in inp.draft_orders
        if is_plasma_exchange(r, inp.kb)
    ]
    plex = inp.kb.valueset("plasma-exchange")
    lines += [
        f"{p.reference}: {p.label} ({p.status}, {p.date})"
        for p in inp.record.procedures
        if plex.match(p.codes, [p.label])
    ]
    return lines


def check(inp: RuleInput) -> Finding | None:
    """(a): the IVIG order in focus meets a plasma-exchange order of the same session."""
    orders = [r for r in inp.draft_orders if is_plasma_exchange(r, inp.kb)]
    if not orders:
        return None
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=(
            f"Plasma exchange ordered with {inp.order.product_name}: the exchange would "
            f"remove the IVIG"
        ),
        evidence=tuple(f"{_reference(r)}: {_label(r)} (ordered in this session)" for r in orders),
        recommendation=(
            "Do not give plasma exchange right after IVIG: the exchange removes the immune "
            "globulin "
            "just given. Choose one treatment, or schedule plasma exchange first."
        ),
        suggestions=tuple(_delete(r) for r in orders),
        selection="any",
    )


def check_plasma_exchange_order(
    order: dict[str, Any],
    record: PatientRecord,
    history: tuple[IgHistory, ...],
    thresholds: Thresholds,
) -> Finding | None:
    """(b): a plasma-exchange order in focus and immune globulin ordered within the window."""
    window = thresholds.plex_after_ivig_days
    recent = [
        h
        for h in history
        if h.authored is not None and 0 <= (record.today - h.authored).days <= window
    ]
    if not recent:
        return None
    latest = max(recent, key=lambda h: h.authored or date.min)
    days = (record.today - latest.authored).days if latest.authored else window
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Immune globulin ordered {days} days ago: plasma exchange now would remove it",
        evidence=(
            f"{_reference(order)}: {_label(order)} (ordered now)",
            *(
                f"{h.order.reference}: {h.order.product_name} ({h.order.route}), {h.status}, "
                f"authored {h.authored}"
                for h in recent
            ),
            f"Window: {window} days",
        ),
        recommendation=(
            "Plasma exchange within two weeks of IVIG removes much of the immune globulin given. "
            "Postpone the exchange, or confirm it is intended."
        ),
        suggestions=(_delete(order),),
        selection="at-most-one",
    )
