"""implausible-dose: a dose no standard regimen gives (card contract §8, implausible values).

A single administration, or a day's total (several orders on one day add up), above
``implausible_day_g_per_kg`` (2.2 g/kg), or a course total above ``implausible_course_g_per_kg``
(3.3 g/kg), is a warning: it exceeds every standard regimen, confirm. Above the ``gross_*``
thresholds (twice those: 4.4 and 6.6 g/kg) it is critical, a likely dose error. A dose of 0 or
less is critical. Any route, any indication; the figures are per kg of actual weight (in
obesity, a dose on actual weight is a regimen some follow: `dosing-weight` suggests the adjusted
one). A second Kawasaki dose ``kawasaki_repeat_hours`` after the first is its own course
(``hooks.courses``), so a repeat for persistent fever is not added to the first. The rule offers
no dose: `dose-check` proposes the indication's dose where it can, and without one no revised
order keeps a critical dose (``hooks.composer``).
"""

from __future__ import annotations

from hooks.courses import KAWASAKI, Course, CourseOrder
from hooks.dosing import Dose
from hooks.evidence import plain_number
from hooks.findings import Finding, Indicator
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.ig_therapy import (
    COURSE_KNOWLEDGE,
    COURSE_OBSERVATIONS,
    COURSE_THRESHOLDS,
    COURSE_VALUESETS,
)
from hooks.text import record

TOPIC = "implausible-dose"


def _named(member: CourseOrder) -> str:
    return f"{record(member.reference)} ({member.order.product_name})"


def _admin(member: CourseOrder) -> float | None:
    """g/kg per administration of an order of this call (not one on record)."""
    dose = member.dose
    return dose.admin_g_per_kg if isinstance(dose, Dose) and member.source != "record" else None


def _not_a_dose(course: Course) -> list[str]:
    """Orders of this call whose dose is 0 or less."""
    return [
        f"{_named(m)}: {plain_number(m.ordered_value)} "
        f"{'g/kg' if isinstance(m.dose, Dose) and m.dose.per_kg else 'g'} per administration "
        "is not a dose"
        for m in course.orders
        if m.source != "record" and m.ordered_value is not None and m.ordered_value <= 0
    ]


def _over(value: float, warn: float, gross: float) -> Indicator | None:
    if value > gross:
        return "critical"
    return "warning" if value > warn else None


def _findings(inp: OrderInput, course: Course) -> list[tuple[Indicator, str, str]]:
    """(tier, the figure in a phrase, the arithmetic) of each figure over a threshold."""
    t = inp.thresholds
    warn_day, gross_day = t.implausible_day_g_per_kg, t.gross_day_g_per_kg
    warn_course, gross_course = t.implausible_course_g_per_kg, t.gross_course_g_per_kg
    found: list[tuple[Indicator, str, str]] = []
    for member in course.orders:
        admin = _admin(member)
        if admin is None:
            continue
        tier = _over(admin, warn_day, gross_day)
        if tier:
            limit = gross_day if tier == "critical" else warn_day
            found.append(
                (
                    tier,
                    f"{plain_number(admin)} g/kg in one administration",
                    f"{_named(member)}: {plain_number(admin)} g/kg per administration > "
                    f"{plain_number(limit)} g/kg",
                )
            )
    for day, total, members in course.day_totals:
        tier = _over(total, warn_day, gross_day)
        if tier and (len(members) > 1 or total != _admin(members[0])):  # else said above
            limit = gross_day if tier == "critical" else warn_day
            parts = " + ".join(
                f"{plain_number(m.per_day_g_per_kg)} g/kg ({record(m.reference)})" for m in members
            )
            found.append(
                (
                    tier,
                    f"{plain_number(total)} g/kg on {day}",
                    f"{day}: {parts} = {plain_number(total)} g/kg in the day > "
                    f"{plain_number(limit)} g/kg",
                )
            )
    total = course.known_g_per_kg
    what = "per cycle" if course.regimen == "interval" else "course total"
    tier = _over(total, warn_course, gross_course)
    one = len(course.orders) == 1 and getattr(course.orders[0].dose, "administrations", 0) == 1
    if tier and not (one and found):  # one administration: its line above says it
        limit = gross_course if tier == "critical" else warn_course
        found.append(
            (
                tier,
                f"{plain_number(total)} g/kg {what}",
                f"{what.capitalize()}: {plain_number(total)} g/kg > {plain_number(limit)} g/kg",
            )
        )
    return found


def check(inp: OrderInput) -> Finding | None:
    if not inp.course.leads(inp.order):
        return None  # a course is checked once, on its lead order (contract §7.4)
    # On the actual weight: a dose of 2 g/kg of actual weight in obesity is a standard regimen
    # (dosing-weight suggests the adjusted dose), not one beyond every regimen.
    course = inp.course.on_weight(inp.weight)
    t = inp.thresholds
    limits = (
        f"More than {plain_number(t.implausible_day_g_per_kg)} g/kg in a day or "
        f"{plain_number(t.implausible_course_g_per_kg)} g/kg per course exceeds every standard "
        "regimen (the highest listed: 2 g/kg in a day or per course; MMN up to 2.4 g/kg a "
        f"month); more than {plain_number(t.gross_day_g_per_kg)} g/kg in a day or "
        f"{plain_number(t.gross_course_g_per_kg)} g/kg per course is a likely dose error"
    )
    zero = _not_a_dose(course)
    if zero:
        return Finding(
            topic=TOPIC,
            indicator="critical",
            summary="The dose is 0 or less: not a dose",
            evidence=tuple(zero),
            recommendation="Correct the dose on the order before it is signed.",
        )
    found = _findings(inp, course)
    if not found:
        return None
    tier: Indicator = "critical" if any(f[0] == "critical" for f in found) else "warning"
    worst = next(phrase for level, phrase, _ in found if level == tier)
    kawasaki = course.indication is not None and KAWASAKI in course.indication
    repeat = (
        [
            f"A second Kawasaki disease dose for persistent fever is its own course only at "
            f"least {plain_number(t.kawasaki_repeat_hours)} h after the first (timing.event "
            "times; with dates only, when the days are far enough apart to be sure)"
        ]
        if kawasaki and len(course.orders) > 1
        else []
    )
    summary = (
        f"Dose {worst} is more than twice every standard regimen: a likely dose error"
        if tier == "critical"
        else f"Dose {worst} exceeds every standard regimen: confirm"
    )
    return Finding(
        topic=TOPIC,
        indicator=tier,
        summary=summary,
        evidence=(*course.steps, *(line for _, _, line in found), limits, *repeat),
        recommendation=(
            "Confirm the dose and the weight it was computed on with the prescriber before the "
            "order is signed" + (": correct it if it is an error." if tier == "critical" else ".")
        ),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="an implausible dose",
    fires_when=(
        "an administration or a day's total above 2.2 g/kg, or a course above 3.3 g/kg "
        "(warning); above twice those, or a dose of 0 or less (critical); a second Kawasaki "
        "dose at least 36 h after the first is its own course"
    ),
    indicator="`warning`; `critical` above twice the limits or for a dose of 0 or less",
    suggests="nothing: confirm the dose (dose-check proposes the indication's dose)",
    reads=Reads(
        prefetch=frozenset(
            {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"}
        ),
        valuesets=COURSE_VALUESETS,
        observations=COURSE_OBSERVATIONS,
        knowledge=COURSE_KNOWLEDGE,
        thresholds=(
            "implausible_day_g_per_kg",
            "implausible_course_g_per_kg",
            "gross_day_g_per_kg",
            "gross_course_g_per_kg",
            *COURSE_THRESHOLDS,
        ),
    ),
    check=check,
)
