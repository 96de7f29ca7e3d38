"""missing-data: no body weight within the recent window (the dose cannot be checked): warning;
for IV orders, no creatinine or eGFR within the recent window: info (contract §3). A recent weight
at or beyond ``weight_min_kg``/``weight_max_kg`` (0.3 and 350 kg) counts as none: it is used in
no per-kg figure (``hooks.body_weight.recent_weight``) and a verified weight is asked for (§8).

Not evaluated when observations could not be obtained at all: data-incomplete says so instead.
"""

from __future__ import annotations

from hooks import evidence
from hooks.body_weight import WEIGHT_THRESHOLDS, implausible_weight
from hooks.findings import Finding, Proposal
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import companion

TOPIC = "missing-data"
RENAL_CONCEPTS = ("serum-creatinine", "egfr")
OBSERVATIONS_KEY = "observations"


def weight_missing(inp: OrderInput) -> bool:
    if OBSERVATIONS_KEY in inp.ctx.gaps:
        return False
    return inp.weight is None


def renal_labs_missing(inp: OrderInput) -> bool:
    if OBSERVATIONS_KEY in inp.ctx.gaps or inp.order.route != "IV":
        return False
    window = inp.thresholds.window_renal_days
    return all(inp.ctx.latest_within(c, window) is None for c in RENAL_CONCEPTS)


def _what_there_is(inp: OrderInput, concepts: tuple[str, ...], window: int) -> list[str]:
    lines = []
    for concept in concepts:
        latest = inp.ctx.latest(concept)
        if latest is not None:
            lines.append(f"Latest is older than {window} days: {evidence.observation(latest)}")
    lines += [
        evidence.unusable(item) for item in inp.ctx.unusable if item.entry.concept in concepts
    ]
    return lines


def check(inp: OrderInput) -> Finding | None:
    no_weight, no_renal = weight_missing(inp), renal_labs_missing(inp)
    if not (no_weight or no_renal):
        return None
    lines: list[str] = []
    proposals: list[Proposal] = []
    missing: list[str] = []
    verify = False
    if no_weight:
        window = inp.thresholds.window_weight_days
        implausible = implausible_weight(inp.ctx, inp.thresholds)
        verify = implausible is not None
        if implausible is not None:
            low, high = inp.thresholds.weight_min_kg, inp.thresholds.weight_max_kg
            missing.append("verified weight")
            lines.append(
                f"Implausible body weight: {evidence.observation(implausible)} is not between "
                f"{evidence.plain_number(low)} and {evidence.plain_number(high)} kg (a unit or "
                "entry error?): it is used for no dose, dosing weight or rate, so the "
                "weight-based checks did not run"
            )
        else:
            missing.append("weight")
            lines.append(
                f"No usable body weight within {window} days: the weight-based dose cannot be "
                "checked"
            )
            lines += _what_there_is(inp, ("body-weight",), window)
        proposals.append(
            companion(
                "Measure body weight", inp, "Weight for immune globulin dosing", "body-weight"
            )
        )
    if no_renal:
        window = inp.thresholds.window_renal_days
        missing.append("creatinine/eGFR")
        lines.append(f"No serum creatinine or eGFR within {window} days (IV product)")
        lines += _what_there_is(inp, RENAL_CONCEPTS, window)
        why = "Baseline renal function before IV immune globulin (IGIV labeling)"
        bun = inp.ctx.latest_within("bun", window)
        if bun is None:
            proposals.append(
                companion("Order BUN and serum creatinine", inp, why, "bun", "serum-creatinine")
            )
        else:  # a lab on file is not ordered again (contract §7.2)
            lines.append(f"BUN on file, so none is suggested: {evidence.observation(bun)}")
            proposals.append(companion("Order serum creatinine", inp, why, "serum-creatinine"))
    return Finding(
        topic=TOPIC,
        indicator="warning" if no_weight else "info",
        summary=f"Missing before immune globulin: recent {' and '.join(missing)}",
        evidence=tuple(lines),
        recommendation=(
            ("Weigh the patient and record the verified weight. " if verify else "")
            + "Obtain the missing measurement before the infusion: immune globulin is dosed by "
            "weight, and IV products need BUN and serum creatinine before the initial infusion."
        ),
        proposals=tuple(proposals),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="missing weight or renal labs",
    fires_when=(
        "no usable body weight within 30 days (a weight of 0.3 kg or less, or 350 kg or more, "
        "is not usable: a verified weight is asked for); for IV orders no creatinine or eGFR "
        "within 30 days"
    ),
    indicator="`warning` when weight is missing, else `info`",
    suggests="measure weight (LOINC 29463-7); BUN and creatinine",
    reads=Reads(
        prefetch=frozenset({"observations"}),
        observations=("body-weight", *RENAL_CONCEPTS, "bun"),
        thresholds=(*WEIGHT_THRESHOLDS, "window_renal_days"),
    ),
    check=check,
)
