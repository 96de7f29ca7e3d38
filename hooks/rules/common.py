"""Findings several rules share: current smoking, BMI, and the mitigation suggestions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from hooks import evidence
from hooks.body_weight import computed_bmi
from hooks.context.model import ClinicalContext, ObservationEntry
from hooks.findings import CreateOrder, Instruction, OrderChange, Proposal, RateCap, ReviseOrder
from hooks.knowledge_base import KnowledgeBase, Thresholds
from hooks.rules.base import OrderInput

OBESITY_READS = ("bmi", "body-weight", "body-height")


def obesity(inp: OrderInput) -> list[tuple[str, date | None]]:
    """BMI >= threshold: latest recent BMI, else computed from recent weight and latest height.
    Each with the date the BMI first reached the threshold in its latest run of values."""
    ctx, limit = inp.ctx, inp.thresholds.bmi_obese
    bmi = ctx.latest_within("bmi", inp.thresholds.window_weight_days)
    if bmi is not None and bmi.value is not None:
        if bmi.value < limit:
            return []
        since = run_start(ctx.values("bmi"), lambda v: v.value is not None and v.value >= limit)
        return [(f"{evidence.observation(bmi)} (BMI ≥ {limit:g})", since)]
    weight, height = inp.weight, ctx.latest("body-height")
    computed = computed_bmi(weight, height)
    if computed is not None and weight and height and computed >= limit:

        def obese(value: ObservationEntry) -> bool:
            found = computed_bmi(value, height)
            return found is not None and found >= limit

        return [
            (
                f"BMI {computed:.1f} computed from {evidence.observation(weight)} and "
                f"{evidence.observation(height)} (BMI ≥ {limit:g})",
                run_start(ctx.values("body-weight"), obese),
            )
        ]
    return []


def run_start(
    values: Sequence[ObservationEntry], meets: Callable[[ObservationEntry], bool]
) -> date | None:
    """The date of the earliest value of the latest unbroken run of values that meet a
    criterion (values latest first): when an abnormal result began. None when the latest value
    does not meet it, or the run's first value is undated."""
    start: date | None = None
    for value in values:
        if not meets(value):
            break
        start = value.date
    return start


def current_smoking(inp: OrderInput) -> list[tuple[str, date | None]]:
    """Current smoker: the latest smoking-status answer, or an active tobacco-use condition;
    each with the date it was first recorded (latest run of current-smoker answers; onset)."""
    found: list[tuple[str, date | None]] = []
    answers = inp.kb.valueset("current-smoker-answers")
    status = inp.ctx.latest("smoking-status")
    if status is not None:
        matched = answers.match(status.value_codes)
        if matched:
            since = run_start(
                inp.ctx.values("smoking-status"), lambda v: answers.match(v.value_codes) is not None
            )
            found.append((f"{evidence.observation(status)} ({matched.describe()})", since))
    found += [
        (evidence.condition(c, m), c.date)
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


def low_igg(
    ctx: ClinicalContext,
    kb: KnowledgeBase,
    thresholds: Thresholds,
    valuesets: Sequence[str],
    *,
    active_only: bool,
) -> list[str]:
    """Hypogammaglobulinemia: a condition of ``valuesets``, or the latest IgG below
    ``igg_low_mg_dl`` (the evidence lines)."""
    found = [
        evidence.condition(c, m)
        for name in valuesets
        for c, m in ctx.conditions_in(kb.valueset(name), active_only=active_only)
    ]
    igg, low = ctx.latest("serum-igg"), thresholds.igg_low_mg_dl
    if igg is not None and igg.value is not None and igg.value < low:
        found.append(f"{evidence.observation(igg)} (below {low:g} mg/dL)")
    return found
