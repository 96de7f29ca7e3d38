"""dosing-weight: BMI >= 30 and a dose per kg of actual weight: suggest the dose on adjusted body
weight, AdjBW = IBW + 0.4 × (actual − IBW) with Devine IBW (reference §8e; Ontario, NBA).

Height under 152.4 cm or actual weight at or below IBW: the actual weight is right, no card. Without
height or sex the adjusted weight cannot be computed, and the card says so.
"""

from __future__ import annotations

from hooks import evidence
from hooks.body_weight import CM_PER_INCH, WEIGHT_THRESHOLDS, adjusted_weight, computed_bmi
from hooks.dosing import Dose
from hooks.evidence import plain_number
from hooks.findings import DoseChange, Finding, Proposal, ReviseOrder
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads

TOPIC = "dosing-weight"


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


def check(inp: OrderInput) -> Finding | None:
    t = inp.thresholds
    bmi = _bmi(inp)
    if bmi is None or bmi[0] < t.bmi_obese:
        return None
    weight, dose = inp.weight, inp.dose
    if not isinstance(dose, Dose) or not dose.per_kg or weight is None or weight.value is None:
        return None
    height = inp.ctx.latest("body-height")
    sex = inp.ctx.patient.gender
    lines = [bmi[1], *dose.steps]
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
    found = adjusted_weight(inp.ctx, t)  # the weight dose-check compares on, too
    if found is None:  # shorter than 152.4 cm, or not above the ideal weight: actual is right
        return None
    ibw, actual, adjusted = found.ibw_kg, weight.value, found.kg
    per_admin = (dose.admin_g_per_kg or 0) * adjusted
    step = t.dose_rounding_g
    grams = rounded(per_admin, step)
    base = t.ibw_base_male_kg if sex == "male" else t.ibw_base_female_kg
    lines += [
        f"Devine IBW ({sex}, {evidence.observation(height)}): "
        f"{plain_number(base)} + {plain_number(t.ibw_kg_per_inch)} × "
        f"({plain_number(height.value / CM_PER_INCH)} in − 60) = {plain_number(ibw)} kg",
        f"AdjBW = {plain_number(ibw)} + {plain_number(t.adjusted_weight_factor)} × "
        f"({plain_number(actual)} − {plain_number(ibw)}) = {plain_number(adjusted)} kg",
        f"Per administration on AdjBW: {plain_number(dose.admin_g_per_kg or 0)} g/kg × "
        f"{plain_number(adjusted)} kg = "
        f"{plain_number(per_admin)} g, rounded to {plain_number(grams)} g"
        + (f" (nearest {plain_number(step)} g)" if step > 0 else ""),
    ]
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
    fires_when="BMI ≥ 30 (observed, or from weight and height) and a per-kg dose",
    indicator="`info`",
    suggests=(
        "the order with the dose on adjusted body weight (Devine IBW; AdjBW = IBW + 0.4 × "
        "(actual − IBW)), rounded to `IVIG_CDS_DOSE_ROUNDING_G`"
    ),
    reads=Reads(
        prefetch=frozenset({"patient", "observations"}),
        observations=("bmi", "body-weight", "body-height"),
        thresholds=(
            "bmi_obese",
            *WEIGHT_THRESHOLDS,
            "dosing_weight_min_height_cm",
            "adjusted_weight_factor",
            "ibw_base_male_kg",
            "ibw_base_female_kg",
            "ibw_kg_per_inch",
            "dose_rounding_g",
        ),
    ),
    check=check,
)
