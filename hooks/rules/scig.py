"""scig-conversion: a subcutaneous order for a patient on IVIG (current, or ordered in the last
90 days): the weekly dose from the product's conversion factor, and per-site limits (§8c, §8d).

Weekly g = previous IV dose (g) × factor ÷ weeks between IV doses; HyQvia keeps the IV dose and
interval. A previous dose that cannot be computed is said so, with why; no dose is guessed.

With a current IV order on record it is the IV → SC switch card (contract §7.5): a warning that
says to stop the IV order (a suggestion to remove it), when the first SC dose falls (about one
week after the last IV dose; HyQvia per its label) and the computed SC dose. It is the one product
card of the switch: duplicate-therapy leaves that pair to it (``switch_from``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from hooks.body_weight import WEIGHT_THRESHOLDS
from hooks.context.model import IgHistory
from hooks.context.read import within_days
from hooks.courses import record_days
from hooks.dosing import Dose, read_dose, strength_of
from hooks.evidence import plain_number
from hooks.findings import DoseChange, Finding, Proposal, RemoveOrder, ReviseOrder
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.text import NOT_CHECKED, record

TOPIC = "scig-conversion"


def recent_ivig(inp: OrderInput) -> IgHistory | None:
    ctx, window = inp.ctx, inp.thresholds.recent_ivig_days

    def find() -> IgHistory | None:  # the patient's, not the order's: once per call
        recent = [
            h
            for h in ctx.ig_history
            if h.order.route == "IV" and (h.current or within_days(ctx.today, h.authored, window))
        ]
        return max(recent, key=lambda h: h.authored or date.min) if recent else None

    return ctx.derived(("scig.recent_ivig", window), find)


def switch_from(inp: OrderInput) -> tuple[IgHistory, ...]:
    """The current IV orders on record an SC order replaces (an IV → SC switch), latest first."""
    if inp.order.route != "SC":
        return ()
    drafts = {d.reference for d in inp.ctx.ig_drafts} | {o.reference for o in inp.ctx.ig_orders}
    current = [
        h for h in inp.ctx.current_ig if h.order.route == "IV" and h.order.reference not in drafts
    ]
    return tuple(sorted(current, key=lambda h: h.authored or date.min, reverse=True))


def _first_dose(inp: OrderInput, previous: IgHistory) -> str:
    """When the first SC dose is given after the last IV one (§8c)."""
    product = inp.order.product
    name = inp.order.product_name
    if product is not None and product.scig is not None and product.scig.same_dose_and_interval:
        # HyQvia's label (hyqviahcp.com dosing): from IGIV, the same dose and frequency after a
        # ramp-up of 1-, 2- and 3-week intervals.
        return (
            f"Start {name} as its label says: from IGIV, the same dose and frequency after a "
            "ramp-up (1-, 2- and 3-week intervals, then every 3-4 weeks)."
        )
    label = (
        ", as the Hizentra label says" if product is not None and product.id == "hizentra" else ""
    )
    days = record_days(previous)
    if days.open_ended or days.last is None:
        when = "the IV order has no end date, so count from the last infusion given"
    elif days.basis == "authoredOn":
        when = f"the IV order, authored {days.last}, gives no administration dates"
    else:
        when = f"on or about {days.last + timedelta(days=7)} (last IV dose {days.last})"
    return f"Give the first SC dose about one week after the last IV dose{label}: {when}."


def _as_switch(found: Finding, inp: OrderInput, stopping: tuple[IgHistory, ...]) -> Finding:
    """The conversion finding as the IV → SC switch card: stop the current IV orders."""
    named = "; ".join(
        f"{record(h.order.reference)} {h.order.product_name} IV, {record(h.status)}"
        for h in stopping
    )
    removals = tuple(
        Proposal(
            f"Stop the {h.order.product_name} IV order",
            (
                RemoveOrder(
                    h.order.reference,
                    f"Stop {h.order.product_name} IV: {inp.order.product_name} SC replaces it",
                ),
            ),
            recommended=True,  # two therapies at once is the hazard the switch card is about
        )
        for h in stopping
    )
    return replace(
        found,
        indicator="warning",
        summary=f"{found.summary}; stop the current IV order",
        evidence=(f"Current IV order, still active: {named}", *found.evidence),
        recommendation=(
            f"Stop the current IV order when {inp.order.product_name} starts: it replaces the "
            f"IV therapy. {found.recommendation}"
        ),
        proposals=(*removals, *found.proposals),
    )


def _site_lines(inp: OrderInput, weight_kg: float | None) -> list[str]:
    product = inp.order.product
    scig = product.scig if product else None
    if scig is None:
        return []
    lines = []
    for limit in scig.site_limits:
        if not limit.applies(inp.ctx.age, weight_kg):
            continue
        parts = [
            f"{plain_number(limit.volume_ml_per_site)} mL per site"
            if limit.volume_ml_per_site
            else "",
            f"{plain_number(limit.rate_ml_per_h_per_site)} mL/h per site"
            if limit.rate_ml_per_h_per_site
            else "",
            f"up to {limit.max_sites} sites" if limit.max_sites else "",
        ]
        text = ", ".join(p for p in parts if p) or "no per-site figures given"
        flag = f" ({NOT_CHECKED})" if limit.unverified else ""
        lines.append(
            f"Site limits, {limit.group}: {text}{flag}{'; ' + limit.note if limit.note else ''}"
        )
    return lines


def _every(weeks: float) -> str:
    return "week" if weeks == 1 else plain_number(weeks) + " weeks"


def check(inp: OrderInput) -> Finding | None:
    stopping = switch_from(inp)
    found = _conversion(inp, stopping[0] if stopping else recent_ivig(inp))
    return _as_switch(found, inp, stopping) if found and stopping else found


def _conversion(inp: OrderInput, previous: IgHistory | None) -> Finding | None:
    if inp.order.route != "SC" or previous is None:
        return None
    weight = inp.weight
    kg = weight.value if weight else None
    lines = [
        f"Previous IVIG: {record(previous.order.reference)} {previous.order.product_name}, "
        f"{record(previous.status)}, authored {previous.authored}"
    ]
    product = inp.order.product
    scig = product.scig if product else None
    dose = read_dose(previous.order.order, weight, strength_of(previous.order))
    problem = None
    if scig is None or (scig.conversion_factor is None and not scig.same_dose_and_interval):
        problem = f"no conversion factor is known for {inp.order.product_name}"
    elif not isinstance(dose, Dose):
        problem = f"the previous IV dose cannot be read ({dose.reason})"
    elif dose.admin_g is None:
        problem = "the previous IV dose is per kg and there is no recent weight"
    if problem or not isinstance(dose, Dose) or scig is None or dose.admin_g is None:
        return Finding(
            topic=TOPIC,
            indicator="info",
            summary=(
                f"Switching to {inp.order.product_name} from IVIG: the weekly dose cannot "
                f"be computed"
            ),
            evidence=(*lines, f"Not computed: {problem}", *_site_lines(inp, kg)),
            recommendation=(
                "Compute the SCIG dose from the previous IVIG dose, interval and the "
                f"product's conversion factor. {_first_dose(inp, previous)}"
            ),
        )
    lines += list(dose.steps)
    default_weeks = inp.thresholds.scig_default_interval_weeks
    weeks = dose.interval_days / 7 if dose.interval_days else default_weeks
    if not dose.interval_days:
        lines.append(
            f"The IV order states no interval: {plain_number(default_weeks)} weeks assumed"
        )
    if scig.same_dose_and_interval:
        grams, every = round(dose.admin_g, 1), weeks
        lines.append(
            f"{inp.order.product_name}: the IGIV dose and interval unchanged: "
            f"{plain_number(grams)} g every {plain_number(weeks)} weeks"
        )
    else:
        factor = scig.conversion_factor or 1.0
        grams, every = round(dose.admin_g * factor / weeks, 1), 1.0
        flag = f" ({NOT_CHECKED})" if scig.conversion_unverified else ""
        lines.append(
            f"Weekly dose = {plain_number(dose.admin_g)} g × {plain_number(factor)}{flag} ÷ "
            f"{plain_number(weeks)} weeks = {plain_number(grams)} g"
        )
    lines += _site_lines(inp, kg)
    change = DoseChange(grams, "g", "converted from IVIG", every_weeks=every)
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=(
            f"Switching to {inp.order.product_name} from IVIG: {plain_number(grams)} g "
            f"every {_every(every)}"
        ),
        evidence=tuple(lines),
        recommendation=f"{_first_dose(inp, previous)} Check the IgG trough after the switch.",
        proposals=(
            Proposal(
                f"Set the dose to {plain_number(grams)} g every {_every(every)}",
                (
                    ReviseOrder(
                        inp.order.reference,
                        (change,),
                        f"Set the dose to {grams:g} g per administration",
                    ),
                ),
            ),
        ),
        source=((scig.source.label or product.source.label, scig.source.url) if product else None),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="IVIG to SCIG conversion",
    fires_when="a subcutaneous order and IVIG that is current or was ordered in the last 90 days",
    indicator=(
        "`info`, with the weekly dose (previous IV dose × factor ÷ weeks between doses; 1.37 "
        "Hizentra, Gamunex-C, Gammagard Liquid; 1.30 Cuvitru, Cutaquig; HyQvia the same dose "
        "and interval) and the per-site limits for the patient's age and weight; `warning` (the "
        "IV → SC switch) when an IV order is current: stop it, first SC dose about one week "
        "after the last IV dose (HyQvia per its label)"
    ),
    suggests="the order at the computed dose and interval; removal of the current IV order",
    reads=Reads(
        prefetch=frozenset(
            {"patient", "observations", "medicationRequests", "medicationStatements"}
        ),
        observations=("body-weight",),
        thresholds=("recent_ivig_days", "scig_default_interval_weeks", *WEIGHT_THRESHOLDS),
    ),
    check=check,
)
