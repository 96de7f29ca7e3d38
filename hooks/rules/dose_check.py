"""dose-check: the ordered IV dose, per kg of actual weight, more than 10% outside the range of the
indication (contract §3, §6; ranges in ``knowledge/dose-ranges.json`` with their sources).

A daily regimen is compared by its course total, an interval regimen per cycle. With the order's
reason only that indication counts; without one, the dose must fit none of the patient's active
indications for the card to fire. A dose that cannot be read is said so, never guessed.
"""

from __future__ import annotations

from hooks.dosing import Dose
from hooks.evidence import plain_number
from hooks.findings import DoseChange, Finding, Proposal, ReviseOrder
from hooks.knowledge_base.schema import DoseRange, Regimen
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.indications import indications_of

TOPIC = "dose-check"


def candidate_ranges(inp: OrderInput) -> tuple[list[DoseRange], list[str]]:
    ranges = inp.kb.dose_ranges
    found = indications_of(inp.order.order, inp.ctx, inp.kb.valuesets, {r.valueset for r in ranges})
    age = inp.ctx.age
    chosen = [r for r in ranges if any(f.valueset == r.valueset for f in found) and r.fits_age(age)]
    return chosen, [f.evidence for f in found]


def fits(value: float, regimen: Regimen, tolerance: float) -> bool:
    return (
        regimen.low_g_per_kg * (1 - tolerance) <= value <= regimen.high_g_per_kg * (1 + tolerance)
    )


def _nearest(value: float, ranges: list[DoseRange]) -> tuple[DoseRange, Regimen, float]:
    def distance(item: tuple[DoseRange, Regimen]) -> float:
        regimen = item[1]
        return max(regimen.low_g_per_kg - value, value - regimen.high_g_per_kg, 0.0)

    indication, regimen = min(((r, g) for r in ranges for g in r.regimens), key=distance)
    target = min(max(value, regimen.low_g_per_kg), regimen.high_g_per_kg)
    return indication, regimen, target


def dose_change(dose: Dose, target_g_per_kg: float, why: str) -> DoseChange:
    """The dose per administration that makes the compared total the target."""
    per_admin = target_g_per_kg / (1 if dose.regimen == "interval" else dose.administrations)
    if dose.per_kg or dose.weight_kg is None:
        return DoseChange(round(per_admin, 3), "g/kg", why)
    return DoseChange(round(per_admin * dose.weight_kg, 1), "g", why)


def check(inp: OrderInput) -> Finding | None:
    if inp.order.route != "IV":
        return None
    ranges, indications = candidate_ranges(inp)
    if not ranges:
        return None
    dose = inp.dose
    names = ", ".join(r.display for r in ranges)
    if not isinstance(dose, Dose):
        return Finding(
            topic=TOPIC,
            indicator="warning",
            summary=f"Dose could not be checked against the {names} range",
            evidence=(*indications, f"{inp.order.reference}: {dose.reason}"),
            recommendation=(
                "State the dose as g, mg, g/kg or mg/kg per administration so it can be checked."
            ),
            source=(ranges[0].source.label, ranges[0].source.url),
        )
    value = dose.compared_g_per_kg
    tolerance = inp.thresholds.dose_tolerance
    if value is None or any(fits(value, g, tolerance) for r in ranges for g in r.regimens):
        return None
    indication, regimen, target = _nearest(value, ranges)
    what = "per cycle" if dose.regimen == "interval" else "per course"
    range_lines = [
        f"{r.display}: {g.kind} {plain_number(g.low_g_per_kg)}-{plain_number(g.high_g_per_kg)} "
        f"g/kg "
        f"({g.description}); source: {r.source.label}"
        for r in ranges
        for g in r.regimens
    ]
    change = dose_change(dose, target, f"dose for {indication.display}")
    shown = f"{change.value:g} {change.unit}"
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Dose {plain_number(value)} g/kg {what} is outside the {names} range",
        evidence=(
            *indications,
            *dose.steps,
            *range_lines,
            f"Allowed: the range ±{plain_number(tolerance * 100)}%; {plain_number(value)} g/kg "
            f"fits none",
        ),
        recommendation=(
            f"Check the dose: the nearest range is {indication.display} "
            f"{plain_number(regimen.low_g_per_kg)}-{plain_number(regimen.high_g_per_kg)} g/kg "
            f"{what}."
        ),
        proposals=(
            Proposal(
                f"Change the dose to {plain_number(target)} g/kg {what}",
                (
                    ReviseOrder(
                        inp.order.reference,
                        (change,),
                        f"Set the dose to {shown} per administration",
                    ),
                ),
            ),
        ),
        source=(indication.source.label, indication.source.url),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="the dose against the indication's range",
    fires_when=(
        "an IV dose, per kg of actual weight, more than 10% outside the range of the indication "
        "(the order's reason, else every active indication: fires only when it fits none); or "
        "a dose that cannot be read"
    ),
    indicator="`warning`",
    suggests="the order with the dose at the nearest end of the range",
    reads=Reads(
        prefetch=frozenset({"patient", "conditions", "observations"}),
        observations=("body-weight",),
        knowledge=("dose-ranges.json",),
        thresholds=("dose_tolerance", "window_weight_days"),
    ),
    check=check,
)
