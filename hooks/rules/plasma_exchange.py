"""plasma-exchange-sequencing: plasma exchange removes IVIG just given (EAN/PNS GBS 2023; MSD).

(a) An IVIG order with any plasma-exchange order in the same session (selected or not).
(b) A plasma-exchange order when immune globulin was ordered in the last 14 days (config).
Plasma exchange is a ServiceRequest coded CPT 36514 or named so in its text. Suggestion: delete the
plasma-exchange order (or postpone it).
"""

from __future__ import annotations

from datetime import date

from hooks.context.model import ClinicalContext, SessionOrder
from hooks.context.read import days_since, within_days
from hooks.findings import Finding, Proposal, RemoveOrder
from hooks.knowledge_base import KnowledgeBase
from hooks.rules.base import (
    ORDER_HOOKS,
    OrderInput,
    OrderRule,
    PlasmaExchangeInput,
    PlasmaExchangeRule,
    Reads,
)
from hooks.text import record

TOPIC = "plasma-exchange-sequencing"


def _label(order: SessionOrder) -> str:
    code = order.code
    if code is None:
        return "plasma exchange"
    return record(code.texts[0]) if code.texts else (code.codes[0].label() if code.codes else "")


def _delete(order: SessionOrder) -> Proposal:
    reference, shown = order.reference, record(order.reference)
    return Proposal(
        f"Remove the plasma-exchange order ({shown}); reorder it later if still needed",
        (RemoveOrder(reference, f"Remove {shown}"),),
    )


def plasma_exchange_known(ctx: ClinicalContext, kb: KnowledgeBase) -> list[str]:
    """Plasma exchange in this session's orders, or as a procedure in the record."""
    lines = [
        f"{record(order.reference)}: {_label(order)} (ordered in this session)"
        for order in ctx.plasma_exchanges_in_session
    ]
    plex = kb.valueset("plasma-exchange")
    lines += [
        f"{record(p.reference)}: {record(p.label)} ({record(p.status)}, {p.date})"
        for p in ctx.procedures
        if plex.match(p.codes, (p.label,))
    ]
    return lines


def check(inp: OrderInput) -> Finding | None:
    """(a): the IVIG order in focus meets a plasma-exchange order of the same session."""
    orders = inp.ctx.plasma_exchanges_in_session
    if not orders:
        return None
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=(
            f"Plasma exchange ordered with {inp.order.product_name}: the exchange would "
            f"remove the IVIG"
        ),
        evidence=tuple(
            f"{record(o.reference)}: {_label(o)} (ordered in this session)" for o in orders
        ),
        recommendation=(
            "Do not give plasma exchange right after IVIG: the exchange removes the immune "
            "globulin "
            "just given. Choose one treatment, or schedule plasma exchange first."
        ),
        proposals=tuple(_delete(o) for o in orders),
        selection="any",
    )


def check_plasma_exchange_order(inp: PlasmaExchangeInput) -> Finding | None:
    """(b): a plasma-exchange order in focus and immune globulin ordered within the window."""
    ctx, window = inp.ctx, inp.thresholds.plex_after_ivig_days
    recent = [h for h in ctx.ig_history if within_days(ctx.today, h.authored, window)]
    if not recent:
        return None
    latest = max(recent, key=lambda h: h.authored or date.min)
    days = days_since(ctx.today, latest.authored) if latest.authored else window
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Immune globulin ordered {days} days ago: plasma exchange now would remove it",
        evidence=(
            f"{record(inp.order.reference)}: {_label(inp.order)} (ordered now)",
            *(
                f"{record(h.order.reference)}: {h.order.product_name} ({h.order.route}), "
                f"{record(h.status)}, authored {h.authored}"
                for h in recent
            ),
            f"Window: {window} days",
        ),
        recommendation=(
            "Plasma exchange within two weeks of IVIG removes much of the immune globulin given. "
            "Postpone the exchange, or confirm it is intended."
        ),
        proposals=(_delete(inp.order),),
        selection="at-most-one",
    )


FIRES_WHEN = (
    'an IVIG order and a plasma-exchange order (CPT 36514 or "plasma exchange"/'
    '"plasmapheresis" text) in the same session; or a plasma-exchange order when immune '
    "globulin was ordered in the last 14 days"
)
SUGGESTS = "delete the plasma-exchange order (`resourceId`)"

RULES = (
    OrderRule(
        topic=TOPIC,
        hooks=ORDER_HOOKS,
        checks="plasma exchange in the same session",
        reads=Reads(prefetch=frozenset(), valuesets=("plasma-exchange",)),
        check=check,
        fires_when=FIRES_WHEN,
        indicator="`warning`",
        suggests=SUGGESTS,
    ),
    PlasmaExchangeRule(
        topic=TOPIC,
        hooks=ORDER_HOOKS,
        checks="plasma exchange soon after immune globulin",
        reads=Reads(
            prefetch=frozenset({"medicationRequests", "medicationStatements"}),
            valuesets=("plasma-exchange",),
            thresholds=("plex_after_ivig_days",),
        ),
        check=check_plasma_exchange_order,
        fires_when=FIRES_WHEN,
        indicator="`warning`",
        suggests=SUGGESTS,
    ),
)
