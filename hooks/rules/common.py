"""Findings several rules share: current smoking, BMI, and the mitigation suggestions."""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.rules.base import ProposedSuggestion, RuleInput, conditions_in


def obesity(inp: RuleInput) -> list[str]:
    """BMI >= threshold: latest recent BMI, else computed from recent weight and latest height."""
    record, limit = inp.record, inp.thresholds.bmi_obese
    window = inp.thresholds.window_weight_days
    bmi = record.latest_within("bmi", window)
    if bmi is not None and bmi.value is not None:
        return [f"{evidence.observation(bmi)} (BMI ≥ {limit:g})"] if bmi.value >= limit else []
    weight, height = record.latest_within("body-weight", window), record.latest("body-height")
    if weight and height and weight.value and height.value:
        computed = weight.value / (height.value / 100) ** 2
        if computed >= limit:
            return [
                f"BMI {computed:.1f} computed from {evidence.observation(weight)} and "
                f"{evidence.observation(height)} (BMI ≥ {limit:g})"
            ]
    return []


def current_smoking(inp: RuleInput) -> list[str]:
    """Current smoker: the latest smoking-status answer, or an active tobacco-use condition."""
    found = []
    status = inp.record.latest("smoking-status")
    if status is not None:
        matched = inp.kb.valueset("current-smoker-answers").match(status.value_codes)
        if matched:
            found.append(f"{evidence.observation(status)} ({matched.describe()})")
    found += [
        evidence.condition(c, m)
        for c, m in conditions_in(inp.record, inp.kb.valueset("tobacco-use"), active_only=True)
    ]
    return found


def hydration(inp: RuleInput, why: str) -> ProposedSuggestion:
    return ProposedSuggestion(
        "Order pre-infusion hydration",
        (suggested_orders.create(inp.kb, "pre-infusion-hydration", inp.record, inp.order, why),),
    )


def minimum_rate(inp: RuleInput) -> ProposedSuggestion:
    """Minimum practicable rate; the product's at-risk rate cap where its label gives one."""
    product = inp.order.product
    cap = product.rate_cap_at_risk_mg_kg_min if product else None
    if cap is not None:
        text = (
            f"Infuse at the minimum practicable rate, not above {cap:g} mg/kg/min "
            "(label cap for at-risk patients)"
        )
        label = f"Cap the infusion rate at {cap:g} mg/kg/min"
    else:
        text = "Infuse at the minimum practicable rate (boxed warning)"
        label = "Add a minimum-practicable-rate instruction to the order"
    return ProposedSuggestion(label, (suggested_orders.with_instruction(inp.order, text, cap),))
