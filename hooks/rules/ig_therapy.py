"""The patient's immune globulin before this call: a first infusion or maintenance, and the date a
risk factor must follow to be new (contract §7.3).

*First infusion*: no immune globulin order on record (outside this call) is current, or had its
last scheduled administration (else its ``authoredOn``) within ``first_infusion_days``.
MedicationAdministration is not read (the context does not read it yet). *New*: later than the
``authoredOn`` of the latest such order outside the order's course.
"""

from __future__ import annotations

from datetime import date

from hooks.body_weight import WEIGHT_THRESHOLDS
from hooks.context.model import ClinicalContext, IgHistory
from hooks.context.read import within_days
from hooks.courses import Course, last_administration
from hooks.knowledge_base import Thresholds
from hooks.text import record

# What a rule that reads the patient's immune globulin orders declares it reads.
THERAPY_PREFETCH = frozenset({"medicationRequests", "medicationStatements"})
THERAPY_THRESHOLDS = ("first_infusion_days",)
# What ``OrderInput.course`` reads (hooks.courses): the orders' indications (the value sets the
# knowledge files name) and the dosing weight (hooks.body_weight: adjusted in an obese adult, from
# BMI, height, sex and age; not in pregnancy).
COURSE_KNOWLEDGE = ("dose-ranges.json", "indication-guidance.json")
COURSE_OBSERVATIONS = ("body-weight", "bmi", "body-height")
COURSE_VALUESETS = ("pregnancy", "not-pregnant")
COURSE_THRESHOLDS = (
    *WEIGHT_THRESHOLDS,
    "bmi_obese",
    "dosing_weight_min_height_cm",
    "dosing_weight_min_age_years",
    "pregnancy_days",
    "adjusted_weight_factor",
    "ibw_base_male_kg",
    "ibw_base_female_kg",
    "ibw_kg_per_inch",
    "kawasaki_repeat_hours",  # a repeat Kawasaki dose is its own course
)


def previous_orders(ctx: ClinicalContext) -> tuple[IgHistory, ...]:
    """Immune globulin orders on record, less any order of this call (an EHR may also list a
    draft it is signing among the patient's orders)."""

    def find() -> tuple[IgHistory, ...]:
        here = {o.reference for o in ctx.ig_orders} | {o.reference for o in ctx.session_orders}
        return tuple(h for h in ctx.ig_history if h.order.reference not in here)

    return ctx.derived("previous_orders", find)


def last_given(ctx: ClinicalContext) -> tuple[tuple[IgHistory, date | None], ...]:
    """Each earlier order with its last administration. Once per call: every order asks, and
    200 orders over a history of 4,900 took 20 s reading the timings again (issue 12)."""
    return ctx.derived(
        "previous_orders.last_given",
        lambda: tuple((h, last_administration(h)) for h in previous_orders(ctx)),
    )


def recent_therapy(ctx: ClinicalContext, limits: Thresholds) -> list[IgHistory]:
    """Orders that make this one a maintenance order: current, or last given in the window."""
    window = limits.first_infusion_days
    return [h for h, last in last_given(ctx) if h.current or within_days(ctx.today, last, window)]


def is_first_infusion(ctx: ClinicalContext, limits: Thresholds) -> bool:
    return not recent_therapy(ctx, limits)


def last_order_date(ctx: ClinicalContext, course: Course | None = None) -> date | None:
    """When the latest immune globulin order on record outside ``course`` was authored (None:
    none is dated): a factor after it is new."""
    return max(
        (
            h.authored
            for h in previous_orders(ctx)
            if h.authored and not (course and course.contains(h.order.reference))
        ),
        default=None,
    )


def describe(history: IgHistory) -> str:
    authored = history.authored.isoformat() if history.authored else "no date"
    return (
        f"{record(history.order.reference)}: {history.order.product_name}, "
        f"{record(history.status)}, {authored}"
    )


def therapy_lines(ctx: ClinicalContext, limits: Thresholds) -> list[str]:
    """One line saying whether this is a first infusion, and on what the answer rests."""
    window = limits.first_infusion_days
    recent = recent_therapy(ctx, limits)
    if not recent:
        older = previous_orders(ctx)
        basis = (
            f"the latest on record is {describe(max(older, key=_authored))}"
            if older
            else "none on record"
        )
        if THERAPY_PREFETCH & ctx.gaps.keys():
            basis += "; the medication record could not be read in full"
        return [
            f"First infusion: no immune globulin order current or given in the last {window} "
            f"days ({basis})"
        ]
    shown = "; ".join(describe(h) for h in recent[:3])
    more = f" and {len(recent) - 3} more" if len(recent) > 3 else ""
    return [f"On immune globulin within {window} days (not a first infusion): {shown}{more}"]


def _authored(history: IgHistory) -> date:
    return history.authored or date.min
