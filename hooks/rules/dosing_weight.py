"""dosing-weight: BMI >= 30 and a dose per kg of actual weight: suggest the dose on adjusted body
weight, AdjBW = IBW + 0.4 × (actual − IBW) with Devine IBW (reference §8e; Ontario, NBA).

Height under 152.4 cm or actual weight at or below IBW: the actual weight is right, no card. Without
height or sex the adjusted weight cannot be computed, and the card says so.
"""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.dosing import Dose, read_dose
from hooks.record import plain_number
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput

TOPIC = "dosing-weight"
CM_PER_INCH = 2.54
MIN_HEIGHT_CM = 152.4  # Ontario calculator: adjusted weight from 5 ft


def ideal_body_weight(height_cm: float, sex: str) -> float:
    """Devine: 50 kg (male) or 45.5 kg (female) + 2.3 kg per inch over 60 inches."""
    base = 50.0 if sex == "male" else 45.5
    return base + 2.3 * (height_cm / CM_PER_INCH - 60)


def _bmi(inp: RuleInput) -> tuple[float, str] | None:
    window = inp.thresholds.window_weight_days
    observed = inp.record.latest_within("bmi", window)
    if observed is not None and observed.value is not None:
        return observed.value, evidence.observation(observed)
    weight, height = (
        inp.record.latest_within("body-weight", window),
        inp.record.latest("body-height"),
    )
    if weight and height and weight.value and height.value:
        value = weight.value / (height.value / 100) ** 2
        return (
            value,
            f"BMI {plain_number(value)} computed from {evidence.observation(weight)} and "
            f"{evidence.observation(height)}",
        )
    return None


def rounded(grams: float, step: float) -> float:
    return max(step, round(grams / step) * step) if step > 0 else round(grams, 1)


def check(inp: RuleInput) -> Finding | None:
    bmi = _bmi(inp)
    if bmi is None or bmi[0] < inp.thresholds.bmi_obese:
        return None
    weight = inp.record.latest_within("body-weight", inp.thresholds.window_weight_days)
    dose = read_dose(inp.order.resource, weight)
    if not isinstance(dose, Dose) or not dose.per_kg or weight is None or weight.value is None:
        return None
    height = inp.record.latest("body-height")
    sex = inp.record.gender
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
    if height.value < MIN_HEIGHT_CM:
        return None
    ibw = ideal_body_weight(height.value, sex)
    actual = weight.value
    if actual <= ibw:
        return None
    adjusted = ibw + 0.4 * (actual - ibw)
    per_admin = (dose.admin_g_per_kg or 0) * adjusted
    step = inp.thresholds.dose_rounding_g
    grams = rounded(per_admin, step)
    lines += [
        f"Devine IBW ({sex}, {evidence.observation(height)}): "
        f"{'50' if sex == 'male' else '45.5'} + 2.3 × "
        f"({plain_number(height.value / CM_PER_INCH)} in − 60) = {plain_number(ibw)} kg",
        f"AdjBW = {plain_number(ibw)} + 0.4 × ({plain_number(actual)} − {plain_number(ibw)}) = "
        f"{plain_number(adjusted)} kg",
        f"Per administration on AdjBW: {plain_number(dose.admin_g_per_kg or 0)} g/kg × "
        f"{plain_number(adjusted)} kg = "
        f"{plain_number(per_admin)} g, rounded to {plain_number(grams)} g"
        + (f" (nearest {plain_number(step)} g)" if step > 0 else ""),
    ]
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
        suggestions=(
            ProposedSuggestion(
                f"Change the dose to {plain_number(grams)} g per administration",
                (
                    suggested_orders.with_dose(
                        inp.order, grams, "g", "dose on adjusted body weight"
                    ),
                ),
            ),
        ),
    )
