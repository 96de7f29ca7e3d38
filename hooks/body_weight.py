"""The weight an immune globulin dose is computed and checked on (card contract §7.1): the recent
actual weight, or, for an obese adult, the adjusted body weight (Devine IBW + 0.4 × (actual −
IBW)). One definition, so that `dosing-weight` (which suggests the adjusted dose) and
`dose-check` (which compares the course with the indication's range) agree: a dose revised to the
adjusted weight is in range when re-checked, not "too low" on the actual weight.

In pregnancy the dose is based on the pre-pregnancy weight (Ontario IG dose calculator), which the
record does not give as such: the current weight is not adjusted, and `dosing-weight` asks for it
(contract §8 "Dose reading").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hooks import evidence
from hooks.context.model import ClinicalContext, ObservationEntry
from hooks.context.read import within_days
from hooks.knowledge_base import KnowledgeBase, Thresholds

CM_PER_INCH = 2.54
ADJUSTED = "adjusted-body-weight"  # the concept of an adjusted weight entry
# What picking the recent weight reads: every rule reading a weight declares these.
WEIGHT_THRESHOLDS = ("window_weight_days", "weight_min_kg", "weight_max_kg")


@dataclass(frozen=True)
class Adjusted:
    """The adjusted body weight and what it was computed from."""

    actual: ObservationEntry
    height: ObservationEntry
    sex: str
    ibw_kg: float
    kg: float


def plausible(weight: ObservationEntry, t: Thresholds) -> bool:
    """A weight inside (``weight_min_kg``, ``weight_max_kg``): an implausible one (400 kg, 0.2 kg:
    a unit or digit error) is used in no per-kg computation (contract §8, implausible values)."""
    return weight.value is not None and t.weight_min_kg < weight.value < t.weight_max_kg


def recent_weight(ctx: ClinicalContext, t: Thresholds) -> ObservationEntry | None:
    """The latest body weight within the recent window, when plausible: the one place a weight
    for a dose, a dosing weight, a BMI or a rate is picked (``OrderInput.weight`` too)."""
    latest = ctx.latest_within("body-weight", t.window_weight_days)
    return latest if latest is not None and plausible(latest, t) else None


def implausible_weight(ctx: ClinicalContext, t: Thresholds) -> ObservationEntry | None:
    """The recent weight when it is implausible (the data card asks for a verified one)."""
    latest = ctx.latest_within("body-weight", t.window_weight_days)
    return latest if latest is not None and not plausible(latest, t) else None


def computed_bmi(weight: ObservationEntry | None, height: ObservationEntry | None) -> float | None:
    """kg / m², or None without both values, or when they give no finite BMI (a height of
    1e-170 cm: the arithmetic fails, and a number that is not a BMI is not shown)."""
    if not (weight and height and weight.value and height.value and height.value > 0):
        return None
    try:
        value = weight.value / (height.value / 100) ** 2
    except (OverflowError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def ideal_body_weight(height_cm: float, sex: str, t: Thresholds) -> float:
    """Devine: 50 kg (male) or 45.5 kg (female) + 2.3 kg per inch over 60 inches."""
    base = t.ibw_base_male_kg if sex == "male" else t.ibw_base_female_kg
    return base + t.ibw_kg_per_inch * (height_cm / CM_PER_INCH - 60)


def bmi_of(ctx: ClinicalContext, t: Thresholds) -> tuple[float, ObservationEntry | None] | None:
    """The recent BMI observation, else the BMI of the recent weight and the latest height (and
    the observed entry, when there is one)."""
    observed = ctx.latest_within("bmi", t.window_weight_days)
    if observed is not None and observed.value is not None:
        return observed.value, observed
    value = computed_bmi(recent_weight(ctx, t), ctx.latest("body-height"))
    return (value, None) if value is not None else None


def pregnancy(ctx: ClinicalContext, kb: KnowledgeBase, t: Thresholds) -> str | None:
    """The evidence of a current pregnancy: an active pregnancy record dated within
    ``pregnancy_days`` and not followed by a not-pregnant record (as the thrombosis rule reads
    it; an undated record cannot be placed in the 42 weeks)."""
    ended = [
        c.date
        for c, _ in ctx.conditions_in(kb.valueset("not-pregnant"), active_only=False)
        if c.date
    ]
    for condition, matched in ctx.conditions_in(kb.valueset("pregnancy"), active_only=True):
        day = condition.date
        if (
            day
            and within_days(ctx.today, day, t.pregnancy_days)
            and not any(e > day for e in ended)
        ):
            return evidence.condition(condition, matched)
    return None


def adult(ctx: ClinicalContext, t: Thresholds) -> bool:
    return ctx.age is not None and ctx.age >= t.dosing_weight_min_age_years


def adjusted_weight(ctx: ClinicalContext, kb: KnowledgeBase, t: Thresholds) -> Adjusted | None:
    """The adjusted body weight when it applies: an adult (``dosing_weight_min_age_years``) who
    is not pregnant, BMI ≥ ``bmi_obese``, a recorded height of at least
    ``dosing_weight_min_height_cm`` and sex, and an actual weight above the ideal."""
    if not adult(ctx, t):
        return None
    bmi = bmi_of(ctx, t)
    actual = recent_weight(ctx, t)
    height, sex = ctx.latest("body-height"), ctx.patient.gender
    if bmi is None or bmi[0] < t.bmi_obese or actual is None or actual.value is None:
        return None
    if height is None or height.value is None or sex not in ("male", "female"):
        return None
    if height.value < t.dosing_weight_min_height_cm:
        return None
    ibw = ideal_body_weight(height.value, sex, t)
    if actual.value <= ibw or pregnancy(ctx, kb, t) is not None:
        return None
    kg = ibw + t.adjusted_weight_factor * (actual.value - ibw)
    return Adjusted(actual, height, sex, ibw, kg)


def dosing_weight(
    ctx: ClinicalContext, kb: KnowledgeBase, t: Thresholds
) -> ObservationEntry | None:
    """The weight doses are checked on: the adjusted weight when it applies (an entry of concept
    ``ADJUSTED`` with the actual weight's reference and date), else the recent actual weight."""
    adjusted = adjusted_weight(ctx, kb, t)
    if adjusted is None:
        return recent_weight(ctx, t)
    return replace(
        adjusted.actual,
        concept=ADJUSTED,
        label="adjusted body weight",
        value=round(adjusted.kg, 2),
        original=f"{adjusted.kg:.2f} kg adjusted from {adjusted.actual.original}",
    )
