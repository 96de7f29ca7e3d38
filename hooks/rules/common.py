"""Findings several rules share: current smoking, BMI, and the mitigation suggestions."""

from __future__ import annotations

import math

from hooks import evidence
from hooks.context.model import ObservationEntry
from hooks.findings import CreateOrder, Instruction, OrderChange, Proposal, RateCap, ReviseOrder
from hooks.rules.base import OrderInput

OBESITY_READS = ("bmi", "body-weight", "body-height")


def obesity(inp: OrderInput) -> list[str]:
    """BMI >= threshold: latest recent BMI, else computed from recent weight and latest height."""
    ctx, limit = inp.ctx, inp.thresholds.bmi_obese
    bmi = ctx.latest_within("bmi", inp.thresholds.window_weight_days)
    if bmi is not None and bmi.value is not None:
        return [f"{evidence.observation(bmi)} (BMI ≥ {limit:g})"] if bmi.value >= limit else []
    weight, height = inp.weight, ctx.latest("body-height")
    computed = computed_bmi(weight, height)
    if computed is not None and weight and height and computed >= limit:
        return [
            f"BMI {computed:.1f} computed from {evidence.observation(weight)} and "
            f"{evidence.observation(height)} (BMI ≥ {limit:g})"
        ]
    return []


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


def current_smoking(inp: OrderInput) -> list[str]:
    """Current smoker: the latest smoking-status answer, or an active tobacco-use condition."""
    found = []
    status = inp.ctx.latest("smoking-status")
    if status is not None:
        matched = inp.kb.valueset("current-smoker-answers").match(status.value_codes)
        if matched:
            found.append(f"{evidence.observation(status)} ({matched.describe()})")
    found += [
        evidence.condition(c, m)
        for c, m in inp.ctx.conditions_in(inp.kb.valueset("tobacco-use"), active_only=True)
    ]
    return found


def hydration(inp: OrderInput, why: str) -> Proposal:
    return Proposal(
        "Order pre-infusion hydration",
        (CreateOrder("pre-infusion-hydration", why, inp.order.reference),),
    )


def companion(label: str, inp: OrderInput, why: str, *orderables: str) -> Proposal:
    """A suggestion of one or more companion orders (labs, measurements) for the order."""
    return Proposal(
        label, tuple(CreateOrder(name, why, inp.order.reference) for name in orderables)
    )


def minimum_rate(inp: OrderInput) -> Proposal:
    """Minimum practicable rate; the product's at-risk rate cap where its label gives one."""
    product = inp.order.product
    cap = product.rate_cap_at_risk_mg_kg_min if product else None
    changes: tuple[OrderChange, ...]
    if cap is not None:
        text = (
            f"Infuse at the minimum practicable rate, not above {cap:g} mg/kg/min "
            "(label cap for at-risk patients)"
        )
        label = f"Cap the infusion rate at {cap:g} mg/kg/min"
        changes = (Instruction(text), RateCap(cap))
    else:
        text = "Infuse at the minimum practicable rate (boxed warning)"
        label = "Add a minimum-practicable-rate instruction to the order"
        changes = (Instruction(text),)
    return Proposal(label, (ReviseOrder(inp.order.reference, changes, text),))


def instruction(inp: OrderInput, label: str, text: str) -> Proposal:
    return Proposal(label, (ReviseOrder(inp.order.reference, (Instruction(text),), text),))
