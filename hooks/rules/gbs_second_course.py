"""gbs-second-course: a GBS course that starts soon after a full earlier one (card contract §8
"Second GBS course").

An appropriateness `warning` when a Guillain-Barré syndrome order's first administration falls
``gbs_second_course_min_days`` (3) to ``gbs_second_course_max_days`` (56, 8 weeks) after the last
administration of a previous GBS course of at least ``gbs_second_course_min_g_per_kg`` (1.5 g/kg):
the SID-GBS trial found no benefit from a second course for insufficient response, and more serious
adverse events; re-treatment may be reasonable for a treatment-related fluctuation.

*A GBS order*: its reason is GBS; without a reason, GBS is the patient's only active immune
globulin indication (as ``indication-guidance`` reads it). *Previous course*: immune globulin on
record outside this call and this course (MedicationRequest completed, stopped, active or on-hold;
MedicationStatement) that is for GBS the same way, grouped into courses like the call's orders
(``hooks.courses``: the same or consecutive days, at most 2 days apart); its days come from its
timing, else its ``authoredOn`` and the regimen's count. Its dose is summed on today's dosing
weight (the weight then is not read). MedicationAdministration is not read (the context does not
read it). A stopped order is counted as ordered; the card says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from hooks.body_weight import dosing_weight
from hooks.context.model import ClinicalContext, MedicationOrder
from hooks.courses import COURSE_GAP_DAYS, CourseOrder, record_days
from hooks.dosing import read_dose
from hooks.evidence import plain_number
from hooks.findings import Finding
from hooks.knowledge_base import KnowledgeBase
from hooks.rules import ig_therapy
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.indications import indications_of
from hooks.text import NOT_CHECKED, record

TOPIC = "gbs-second-course"
GBS = "guillain-barre-syndrome"


@dataclass(frozen=True)
class EarlierCourse:
    orders: tuple[CourseOrder, ...]  # by first day
    last: date

    @property
    def g_per_kg(self) -> float:
        """The g/kg of the orders whose dose is known (at least this much was ordered)."""
        return round(sum(m.g_per_kg for m in self.orders if m.g_per_kg is not None), 6)


def for_gbs(order: MedicationOrder, ctx: ClinicalContext, kb: KnowledgeBase) -> bool:
    """The order's reason is GBS; without a reason, GBS is the patient's only active indication."""
    wanted = {r.valueset for r in kb.dose_ranges} | {g.valueset for g in kb.guidance}
    found = {f.valueset for f in indications_of(order, ctx, kb.valuesets, wanted)}
    if not order.has_reason and len(found) > 1:
        return False
    return GBS in found


def earlier_courses(inp: OrderInput) -> list[EarlierCourse]:
    """The GBS courses on record outside this call and this course, each with its last day."""
    weight = dosing_weight(inp.ctx, inp.kb, inp.thresholds)
    members: list[CourseOrder] = []
    for position, history in enumerate(ig_therapy.previous_orders(inp.ctx)):
        if inp.course.contains(history.order.reference):
            continue
        if not for_gbs(history.order.order, inp.ctx, inp.kb):
            continue
        days = record_days(history)
        if days.first is None:
            continue  # undated and no authoredOn: when it was given is unknown
        dose = read_dose(history.order.order, weight)
        members.append(CourseOrder(history.order, "record", history.status, days, dose, position))
    members.sort(key=lambda m: (m.days.first or date.min, m.position))
    courses: list[list[CourseOrder]] = []
    last: date | None = None
    for member in members:
        first = member.days.first
        assert first is not None
        if courses and last is not None and (first - last).days <= COURSE_GAP_DAYS:
            courses[-1].append(member)
        else:
            courses.append([member])
            last = None
        own = member.days.last or first
        last = own if last is None else max(last, own)
    return [
        EarlierCourse(tuple(group), max(m.days.last or m.days.first or date.min for m in group))
        for group in courses
    ]


def first_day(inp: OrderInput) -> date:
    """This course's first administration; undated: the order's ``authoredOn``, else today."""
    days = inp.course.days
    return days[0] if days else (inp.order.order.authored or inp.ctx.today)


def check(inp: OrderInput) -> Finding | None:
    if not inp.course.leads(inp.order) or not for_gbs(inp.order.order, inp.ctx, inp.kb):
        return None
    limits = inp.thresholds
    start = first_day(inp)
    before = [c for c in earlier_courses(inp) if c.last < start]
    if not before:
        return None
    previous = max(before, key=lambda c: c.last)
    gap = (start - previous.last).days
    low, high = limits.gbs_second_course_min_days, limits.gbs_second_course_max_days
    if not low <= gap <= high or previous.g_per_kg < limits.gbs_second_course_min_g_per_kg:
        return None
    total = plain_number(previous.g_per_kg)
    lines = [
        "Previous Guillain-Barré syndrome course:",
        *(m.describe() for m in previous.orders),
        f"Previous course total: {total} g/kg (a dose in grams per kg of today's dosing weight)",
        *(
            f"{record(m.reference)}: stopped; its ordered dose is counted (less may be given)"
            for m in previous.orders
            if m.status == "stopped"
        ),
        (
            f"First administration of this course {start} − last administration of the "
            f"previous course {previous.last} = {gap} days (a second course is flagged from "
            f"{low} days to {plain_number(high / 7)} weeks after a course of ≥ "
            f"{plain_number(limits.gbs_second_course_min_g_per_kg)} g/kg)"
        ),
    ]
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=(
            f"Second GBS course {gap} days after a {total} g/kg course: not for insufficient "
            "response (SID-GBS trial)"
        ),
        evidence=tuple(lines),
        recommendation=(
            "No second course for insufficient response (SID-GBS trial: no benefit, and more "
            "serious adverse events, thromboembolic events among them). Re-treatment may be "
            f"reasonable for a treatment-related fluctuation ({NOT_CHECKED}). Confirm why a "
            "second course is ordered."
        ),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="a second Guillain-Barré syndrome course",
    fires_when=(
        "a Guillain-Barré syndrome order whose first administration falls 3 days to 8 weeks "
        "after the last administration of a previous GBS course of ≥ 1.5 g/kg on record"
    ),
    indicator="`warning`",
    suggests="none; the card says a second course is not for insufficient response",
    reads=Reads(
        prefetch=frozenset({"conditions", "observations"}) | ig_therapy.THERAPY_PREFETCH,
        valuesets=(GBS, *ig_therapy.COURSE_VALUESETS),
        observations=ig_therapy.COURSE_OBSERVATIONS,
        thresholds=(
            "gbs_second_course_min_days",
            "gbs_second_course_max_days",
            "gbs_second_course_min_g_per_kg",
            *ig_therapy.COURSE_THRESHOLDS,
        ),
        knowledge=ig_therapy.COURSE_KNOWLEDGE,
    ),
    check=check,
)
