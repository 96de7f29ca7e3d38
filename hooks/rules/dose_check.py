"""dose-check: the ordered IV dose, per kg of actual weight, more than 10% outside the range of the
indication (contract §3, §6; ranges in ``knowledge/dose-ranges.json`` with their sources).

A daily regimen is compared by its course total, an interval regimen per cycle. With the order's
reason only that indication counts; without one, the dose must fit none of the patient's active
indications for the card to fire. A dose that cannot be read is said so, never guessed.

A course written as several orders (contract §7.4) is checked once, on its lead, by its total. A
revised dose is offered only for a course one order covers, a raise only at order-sign, and never
above the indication's highest listed daily dose or the range; otherwise the card says what the
course so far amounts to. At order-select a dose within the tolerance of a listed daily dose is
one day of a course, never low. Without an indication on the order and with several that fit,
no revised dose is offered (contract §8): the card says which to name.
"""

from __future__ import annotations

import math

from hooks.context.model import MedicationOrder
from hooks.courses import Course, indication_key
from hooks.dosing import Dose, UnreadableDose
from hooks.evidence import plain_number
from hooks.findings import DoseChange, Finding, Proposal, ReviseOrder
from hooks.knowledge_base.schema import DoseRange, Regimen
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.ig_therapy import COURSE_OBSERVATIONS, COURSE_THRESHOLDS, COURSE_VALUESETS
from hooks.rules.indications import indications_of
from hooks.text import NOT_CHECKED, record

TOPIC = "dose-check"


def _reasoned_order(inp: OrderInput) -> MedicationOrder:
    """The order whose reason is the course's indication: the lead's own, else another order of
    its course, else a draft of the call (an order without a reason takes the call's, §7.4)."""
    if inp.order.order.has_reason:
        return inp.order.order
    course = inp.course
    candidates = [m.order.order for m in course.orders] + [d.order for d in inp.ctx.ig_drafts]
    return next(
        (
            order
            for order in candidates
            if order.has_reason and indication_key(order, inp.ctx, inp.kb) == course.indication
        ),
        inp.order.order,
    )


def candidate_ranges(inp: OrderInput) -> tuple[list[DoseRange], list[str]]:
    ranges = inp.kb.dose_ranges
    wanted = {r.valueset for r in ranges}
    found = indications_of(_reasoned_order(inp), inp.ctx, inp.kb.valuesets, wanted)
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


def listed_daily(ranges: list[DoseRange]) -> list[float]:
    """The daily doses (g/kg) the sources list for these indications' regimens."""
    return sorted({daily for r in ranges for g in r.regimens for daily in g.daily_g_per_kg})


def _near_listed(value: float | None, daily: list[float], tolerance: float) -> bool:
    return value is not None and any(abs(value - d) <= d * tolerance for d in daily)


def _floor(value: float, places: int) -> float:
    """Rounded down, so a revised dose never exceeds the limit it was computed from."""
    scale = 10.0**places
    return math.floor(value * scale + 1e-9) / scale


def _revision(
    inp: OrderInput, course: Course, indication: DoseRange, target: float, low: bool
) -> tuple[DoseChange, float, str] | str:
    """(the dose per administration, the revised compared total, a note) for a course one order
    covers; else why the course gets text instead (contract §7.4): several orders (a change never
    multiplies across them), a low dose before order-sign, one administration that is one listed
    day of a longer course, or no raise within the highest listed daily dose."""
    dose = course.orders[0].dose
    if not course.single_order:
        return f"The course is {len(course.orders)} orders, so no single order is changed: " + (
            "order its remaining days, or change its orders." if low else "review its orders."
        )
    if not isinstance(dose, Dose) or dose.admin_g_per_kg is None:
        return ""
    if low and inp.ctx.hook != "order-sign":
        return "A revised dose is offered at order-sign, if this order is then the whole course."
    administrations = 1 if dose.regimen == "interval" else dose.administrations
    tolerance = inp.thresholds.dose_tolerance
    daily = listed_daily([indication])
    one_day = _near_listed(dose.admin_g_per_kg, daily, tolerance)
    if low and administrations == 1 and one_day:
        return (
            f"{plain_number(dose.admin_g_per_kg)} g/kg is one day's dose of the course: order "
            "its other days (a single administration is not raised to the whole course)."
        )
    per_admin, note = target / administrations, ""
    if daily and per_admin > max(daily):
        per_admin = max(daily)
        note = (
            f" (at most {plain_number(max(daily))} g/kg per administration, the highest daily "
            f"dose listed for {indication.display})"
        )
    if low and per_admin <= dose.admin_g_per_kg:
        return (
            f"The highest daily dose listed for {indication.display} is "
            f"{plain_number(max(daily))} g/kg: give the course over more days."
        )
    if low and one_day:  # a listed daily dose for too few days: the count may be what is short
        needed = math.ceil(target / dose.admin_g_per_kg - 1e-9)
        note += (
            f"; or keep {plain_number(dose.admin_g_per_kg)} g/kg and give {needed} administrations"
        )
    why = f"dose for {indication.display}"
    if dose.per_kg or dose.weight_kg is None:
        change = DoseChange(_floor(per_admin, 3), "g/kg", why)
        revised = change.value * administrations
    else:
        change = DoseChange(_floor(per_admin * dose.weight_kg, 1), "g", why)
        revised = change.value / dose.weight_kg * administrations
    return change, round(revised, 3), note


def _usual(regimen: Regimen) -> str:
    low, high = plain_number(regimen.low_g_per_kg), plain_number(regimen.high_g_per_kg)
    return low if low == high else f"{low}-{high}"


def _text_only(course: Course, regimen: Regimen, value: float, low: bool, why: str) -> str:
    """What the card says when no revised dose is offered."""
    shown = plain_number(value)
    if course.regimen == "interval":
        said = f"Dose {shown} g/kg per cycle; usual {_usual(regimen)} g/kg per cycle"
    elif low:
        said = f"Course so far {shown} g/kg; usual course {_usual(regimen)} g/kg"
    else:
        said = f"Course total {shown} g/kg; usual course {_usual(regimen)} g/kg"
    return f"{said} ({regimen.description}). {why}".strip()


def check(inp: OrderInput) -> Finding | None:
    if inp.order.route != "IV":
        return None
    course = inp.course
    if not course.leads(inp.order):
        return None  # a course is checked once, on its lead order (contract §7.4)
    ranges, indications = candidate_ranges(inp)
    if not ranges:
        return None
    names = ", ".join(r.display for r in ranges)
    if course.unreadable:
        return Finding(
            topic=TOPIC,
            indicator="warning",
            summary=f"Dose could not be checked against the {names} range",
            evidence=(
                *indications,
                *(
                    f"{record(m.reference)}: {m.dose.reason}"
                    for m in course.unreadable
                    if isinstance(m.dose, UnreadableDose)
                ),
            ),
            recommendation=(
                "State the dose as g, mg, g/kg or mg/kg per administration so it can be checked."
            ),
            source=(ranges[0].source.label, ranges[0].source.url),
        )
    value = course.total_g_per_kg
    tolerance = inp.thresholds.dose_tolerance
    if value is None or any(fits(value, g, tolerance) for r in ranges for g in r.regimens):
        return None
    indication, regimen, target = _nearest(value, ranges)
    low = value < target
    daily = listed_daily(ranges)
    one_day = all(
        isinstance(m.dose, Dose) and _near_listed(m.dose.admin_g_per_kg, daily, tolerance)
        for m in course.in_focus
    )
    if low and inp.ctx.hook == "order-select" and one_day:
        return None  # one day of a course being ordered: never "low" at order-select (§7.4)
    what = "per cycle" if course.regimen == "interval" else "per course"
    range_lines = [
        f"{r.display}: {g.kind} {_usual(g)} g/kg "
        f"({g.description}{'; ' + NOT_CHECKED if g.unverified else ''}); source: {r.source.label}"
        for r in ranges
        for g in r.regimens
    ]
    evidence = (
        *indications,
        *course.steps,
        *range_lines,
        f"Allowed: the range ±{plain_number(tolerance * 100)}%; {plain_number(value)} g/kg "
        f"fits none",
    )
    nearest = f"the nearest range is {indication.display} {_usual(regimen)} g/kg {what}"
    summary = (
        f"Dose {plain_number(value)} g/kg {what} is outside the {names} range"
        if course.single_order
        else f"Course total {plain_number(value)} g/kg ({len(course.orders)} orders) is outside "
        f"the {names} range"
    )
    several = len({r.valueset for r in ranges}) > 1 and not _reasoned_order(inp).has_reason
    revision = (
        f"No revised dose: the order names no indication and the patient has several ({names}); "
        "add the indication to the order (reasonCode) to have its dose checked and computed."
        if several  # contract §8: the dose of which indication is not for the service to guess
        else _revision(inp, course, indication, target, low)
    )
    if isinstance(revision, str):
        return Finding(
            topic=TOPIC,
            indicator="warning",
            summary=summary,
            evidence=evidence,
            recommendation=_text_only(course, regimen, value, low, revision),
            source=(indication.source.label, indication.source.url),
        )
    change, revised, note = revision
    shown = f"{change.value:g} {change.unit}"
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=summary,
        evidence=evidence,
        recommendation=f"Check the dose: {nearest}{note}.",
        proposals=(
            Proposal(
                f"Change the dose to {plain_number(revised)} g/kg {what}",
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
        prefetch=frozenset(
            {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"}
        ),
        valuesets=COURSE_VALUESETS,
        observations=COURSE_OBSERVATIONS,
        knowledge=("dose-ranges.json", "indication-guidance.json"),
        thresholds=("dose_tolerance", *COURSE_THRESHOLDS),
    ),
    check=check,
)
