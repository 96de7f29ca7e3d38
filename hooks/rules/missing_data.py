"""missing-data: no body weight within the recent window (the dose cannot be checked): warning;
for IV orders, no creatinine or eGFR within the recent window: info (contract §3).

Not evaluated when observations could not be obtained at all: data-incomplete says so instead.
"""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput

TOPIC = "missing-data"
RENAL_CONCEPTS = ("serum-creatinine", "egfr")
OBSERVATIONS_KEY = "observations"


def weight_missing(inp: RuleInput) -> bool:
    if OBSERVATIONS_KEY in inp.record.gaps:
        return False
    return inp.record.latest_within("body-weight", inp.thresholds.window_weight_days) is None


def renal_labs_missing(inp: RuleInput) -> bool:
    if OBSERVATIONS_KEY in inp.record.gaps or inp.order.route != "IV":
        return False
    window = inp.thresholds.window_renal_days
    return all(inp.record.latest_within(c, window) is None for c in RENAL_CONCEPTS)


def _what_there_is(inp: RuleInput, concepts: tuple[str, ...], window: int) -> list[str]:
    lines = []
    for concept in concepts:
        latest = inp.record.latest(concept)
        if latest is not None:
            lines.append(f"Latest is older than {window} days: {evidence.observation(latest)}")
    lines += [
        evidence.unusable(item) for item in inp.record.unusable if item.entry.concept in concepts
    ]
    return lines


def check(inp: RuleInput) -> Finding | None:
    no_weight, no_renal = weight_missing(inp), renal_labs_missing(inp)
    if not (no_weight or no_renal):
        return None
    lines: list[str] = []
    suggestions: list[ProposedSuggestion] = []
    missing: list[str] = []
    if no_weight:
        window = inp.thresholds.window_weight_days
        missing.append("weight")
        lines.append(
            f"No usable body weight within {window} days: the weight-based dose cannot be checked"
        )
        lines += _what_there_is(inp, ("body-weight",), window)
        suggestions.append(
            ProposedSuggestion(
                "Measure body weight",
                (
                    suggested_orders.create(
                        inp.kb,
                        "body-weight",
                        inp.record,
                        inp.order,
                        "Weight for immune globulin dosing",
                    ),
                ),
            )
        )
    if no_renal:
        window = inp.thresholds.window_renal_days
        missing.append("creatinine/eGFR")
        lines.append(f"No serum creatinine or eGFR within {window} days (IV product)")
        lines += _what_there_is(inp, RENAL_CONCEPTS, window)
        why = "Baseline renal function before IV immune globulin (IGIV labeling)"
        suggestions.append(
            ProposedSuggestion(
                "Order BUN and serum creatinine",
                (
                    suggested_orders.create(inp.kb, "bun", inp.record, inp.order, why),
                    suggested_orders.create(inp.kb, "serum-creatinine", inp.record, inp.order, why),
                ),
            )
        )
    return Finding(
        topic=TOPIC,
        indicator="warning" if no_weight else "info",
        summary=f"Missing before immune globulin: recent {' and '.join(missing)}",
        evidence=tuple(lines),
        recommendation=(
            "Obtain the missing measurement before the infusion: immune globulin is dosed by "
            "weight, and IV products need BUN and serum creatinine before the initial infusion."
        ),
        suggestions=tuple(suggestions),
    )
