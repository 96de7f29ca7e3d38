"""dosing-weight: an obese adult (BMI >= 30) whose dose follows actual weight: suggest the dose on
adjusted body weight, AdjBW = IBW + 0.4 × (actual − IBW) with Devine IBW (reference §8e; Ontario,
NBA; card contract §8 "Dose reading").

A dose follows actual weight when it is per kg (the EHR multiplies it by the actual weight), or a
gram dose within 10% of actual weight × a listed daily (or per-cycle) dose of the order's
indication and more than 10% above adjusted weight × the same dose. For primary or secondary
immunodeficiency on an interval (maintenance) regimen the card is information only: replacement
doses are titrated to IgG trough and infections. In pregnancy the dose is based on the
pre-pregnancy weight: the card asks for it and revises nothing.

Under 18, height under 152.4 cm, or actual weight at or below IBW: the actual weight is right, no
card. Without height or sex the adjusted weight cannot be computed, and the card says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from hooks import evidence
from hooks.body_weight import (
    CM_PER_INCH,
    WEIGHT_THRESHOLDS,
    adjusted_weight,
    adult,
    computed_bmi,
    pregnancy,
)
from hooks.dosing import Dose
from hooks.evidence import plain_number
from hooks.findings import DoseChange, Finding, Proposal, ReviseOrder
from hooks.knowledge_base.schema import DoseRange, Regimen
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.ig_therapy import COURSE_VALUESETS
from hooks.rules.indications import indications_of

TOPIC = "dosing-weight"
# Replacement therapy: its maintenance dose is titrated to IgG trough and infections (Ontario).
REPLACEMENT = frozenset({"primary-immunodeficiency", "secondary-hypogammaglobulinemia"})


@dataclass(frozen=True)
class Listed:
    """The listed dose (g/kg) a gram dose matches on actual weight, and where it is listed."""

    g_per_kg: float
    indication: DoseRange
    regimen: Regimen


def _bmi(inp: OrderInput) -> tuple[float, str] | None:
    observed = inp.ctx.latest_within("bmi", inp.thresholds.window_weight_days)
    if observed is not None and observed.value is not None:
        return observed.value, evidence.observation(observed)
    weight, height = inp.weight, inp.ctx.latest("body-height")
    value = computed_bmi(weight, height)
    if value is not None and weight and height:
        return (
            value,
            f"BMI {plain_number(value)} computed from {evidence.observation(weight)} and "
            f"{evidence.observation(height)}",
        )
    return None


def rounded(grams: float, step: float) -> float:
    return max(step, round(grams / step) * step) if step > 0 else round(grams, 1)


def _indications(inp: OrderInput) -> tuple[list[DoseRange], list[str]]:
    """The dose ranges of the order's indication (its reason, else the active indications)."""
    ranges = inp.kb.dose_ranges
    found = indications_of(inp.order.order, inp.ctx, inp.kb.valuesets, {r.valueset for r in ranges})
    chosen = [
        r
        for r in ranges
        if any(f.valueset == r.valueset for f in found) and r.fits_age(inp.ctx.age)
    ]
    return chosen, [f.evidence for f in found]


def _listed_doses(regimen: Regimen, on_actual: float) -> list[float]:
    """A regimen's listed daily doses; for a cycle (or a range listing none), the dose within
    its range nearest to the ordered g/kg on actual weight."""
    doses = list(regimen.daily_g_per_kg)
    if regimen.kind == "cycle" or not doses:
        doses.append(min(max(on_actual, regimen.low_g_per_kg), regimen.high_g_per_kg))
    return doses


def following_actual(
    grams: float, actual_kg: float, ranges: list[DoseRange], tolerance: float
) -> Listed | None:
    """The listed dose a gram dose is, on actual weight, within ``tolerance`` of (the nearest)."""
    on_actual = grams / actual_kg
    matches = [
        Listed(d, r, g)
        for r in ranges
        for g in r.regimens
        for d in _listed_doses(g, on_actual)
        if d > 0 and abs(grams - actual_kg * d) <= tolerance * actual_kg * d
    ]
    return min(matches, key=lambda m: abs(on_actual - m.g_per_kg), default=None)


def check(inp: OrderInput) -> Finding | None:
    t = inp.thresholds
    weight, dose = inp.weight, inp.dose
    if not isinstance(dose, Dose) or dose.admin_g is None or weight is None or not weight.value:
        return None
    if not adult(inp.ctx, t):
        return None
    bmi = _bmi(inp)
    if bmi is None or bmi[0] < t.bmi_obese:
        return None
    ranges, indications = _indications(inp)
    actual, tolerance = weight.value, t.dose_tolerance
    listed: Listed | None = None
    lines = [bmi[1]]
    if not dose.per_kg:
        listed = following_actual(dose.admin_g, actual, ranges, tolerance)
        if listed is None:
            return None  # a gram dose not written on actual weight
        lines += [
            *indications,
            *dose.steps,
            f"{plain_number(dose.admin_g)} g is within {plain_number(tolerance * 100)}% of "
            f"{plain_number(actual)} kg actual weight × {plain_number(listed.g_per_kg)} g/kg = "
            f"{plain_number(actual * listed.g_per_kg)} g ({listed.indication.display}: "
            f"{listed.regimen.description}): the dose follows actual weight",
        ]
    else:
        lines += dose.steps
    pregnant = pregnancy(inp.ctx, inp.kb, t)
    if pregnant is not None:
        return Finding(
            topic=TOPIC,
            indicator="info",
            summary=(
                f"BMI {plain_number(bmi[0])} in pregnancy: base the dose on the pre-pregnancy "
                "weight"
            ),
            evidence=(*lines, f"Pregnancy: {pregnant}"),
            recommendation=(
                "Record the pre-pregnancy weight and base the dose on it (Ontario IG dose "
                "calculator: pre-pregnancy weight in pregnancy). The current weight is not "
                "adjusted, and no revised dose is offered."
            ),
        )
    height = inp.ctx.latest("body-height")
    sex = inp.ctx.patient.gender
    if height is None or height.value is None or sex not in ("male", "female"):
        missing = " and ".join(
            x
            for x, gone in (("height", height is None), ("sex", sex not in ("male", "female")))
            if gone
        )
        return Finding(
            topic=TOPIC,
            indicator="info",
            summary=(
                f"BMI {plain_number(bmi[0])}: adjusted body weight needs the patient's {missing}"
            ),
            evidence=tuple(lines),
            recommendation=(
                "Record height and sex so the dose can be based on adjusted body weight."
            ),
        )
    found = adjusted_weight(inp.ctx, inp.kb, t)  # the weight dose-check compares on, too
    if found is None:  # shorter than 152.4 cm, or not above the ideal weight: actual is right
        return None
    ibw, adjusted = found.ibw_kg, found.kg
    g_per_kg = listed.g_per_kg if listed is not None else (dose.admin_g_per_kg or 0)
    on_adjusted = g_per_kg * adjusted
    if listed is not None and dose.admin_g <= (1 + tolerance) * on_adjusted:
        return None  # a gram dose already near the adjusted weight's
    base = t.ibw_base_male_kg if sex == "male" else t.ibw_base_female_kg
    lines += [
        f"Devine IBW ({sex}, {evidence.observation(height)}): "
        f"{plain_number(base)} + {plain_number(t.ibw_kg_per_inch)} × "
        f"({plain_number(height.value / CM_PER_INCH)} in − 60) = {plain_number(ibw)} kg",
        f"AdjBW = {plain_number(ibw)} + {plain_number(t.adjusted_weight_factor)} × "
        f"({plain_number(actual)} − {plain_number(ibw)}) = {plain_number(adjusted)} kg",
    ]
    on_adjusted_line = (
        f"Per administration on AdjBW: {plain_number(g_per_kg)} g/kg × {plain_number(adjusted)} "
        f"kg = {plain_number(on_adjusted)} g"
    )
    if dose.regimen == "interval" and any(r.valueset in REPLACEMENT for r in ranges):
        return Finding(
            topic=TOPIC,
            indicator="info",
            summary=(
                f"BMI {plain_number(bmi[0])}: replacement dose titrated to IgG trough and "
                "infections"
            ),
            evidence=(*lines, on_adjusted_line),
            recommendation=(
                "Replacement (maintenance) doses for immunodeficiency are titrated to IgG trough "
                "and infections, not to weight alone (Ontario IG dose calculator); adjusted body "
                f"weight ({plain_number(adjusted)} kg) may guide a starting or reviewed dose. No "
                "revised dose is offered."
            ),
        )
    step = t.dose_rounding_g
    grams = rounded(on_adjusted, step)
    lines.append(
        f"{on_adjusted_line}, rounded to {plain_number(grams)} g"
        + (f" (nearest {plain_number(step)} g)" if step > 0 else "")
    )
    change = DoseChange(grams, "g", "dose on adjusted body weight")
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=(
            f"BMI {plain_number(bmi[0])}: dose on adjusted body weight "
            f"({plain_number(adjusted)} kg), {plain_number(grams)} g"
        ),
        evidence=tuple(lines),
        recommendation=(
            "Consider dosing on adjusted body weight (Ontario and Australian NBA "
            "practice for BMI ≥ 30)."
        ),
        proposals=(
            Proposal(
                f"Change the dose to {plain_number(grams)} g per administration",
                (
                    ReviseOrder(
                        inp.order.reference,
                        (change,),
                        f"Set the dose to {grams:g} g per administration",
                    ),
                ),
            ),
        ),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="the dosing weight in obesity",
    fires_when=(
        "an adult with BMI ≥ 30 (observed, or from weight and height) and a dose that follows "
        "actual weight: per kg, or grams within 10% of actual weight × a listed daily (or "
        "per-cycle) dose of the indication and more than 10% above adjusted weight × that dose"
    ),
    indicator="`info`",
    suggests=(
        "the order with the dose on adjusted body weight (Devine IBW; AdjBW = IBW + 0.4 × "
        "(actual − IBW)), rounded to `IVIG_CDS_DOSE_ROUNDING_G`; none for an immunodeficiency "
        "maintenance regimen (titrated to IgG trough) or in pregnancy (pre-pregnancy weight "
        "asked for)"
    ),
    reads=Reads(
        prefetch=frozenset({"patient", "conditions", "observations"}),
        valuesets=COURSE_VALUESETS,
        observations=("bmi", "body-weight", "body-height"),
        knowledge=("dose-ranges.json",),
        thresholds=(
            "bmi_obese",
            *WEIGHT_THRESHOLDS,
            "dosing_weight_min_height_cm",
            "dosing_weight_min_age_years",
            "pregnancy_days",
            "dose_tolerance",
            "adjusted_weight_factor",
            "ibw_base_male_kg",
            "ibw_base_female_kg",
            "ibw_kg_per_inch",
            "dose_rounding_g",
        ),
    ),
    check=check,
)
