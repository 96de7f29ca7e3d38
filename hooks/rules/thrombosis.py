"""thrombosis-risk: any risk factor of the class boxed warning (reference §3a; contract §3).

Advanced age; history of venous or arterial thrombosis (any clinical status: a resolved DVT is
still a history); hypercoagulable conditions (any status: mostly lifelong); active immobilization,
central venous catheter and hyperviscosity (or triglycerides >= threshold); current estrogens or
other listed prothrombotic drugs; cardiovascular risk factors. Applies to IV and SC products.
"""

from __future__ import annotations

from hooks import evidence
from hooks.findings import Finding
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import OBESITY_READS, current_smoking, hydration, minimum_rate, obesity

TOPIC = "thrombosis-risk"
HISTORY = ("venous-thromboembolism", "arterial-thrombosis", "hypercoagulable-conditions")
ACTIVE = ("immobilization", "central-venous-catheter", "hyperviscosity-conditions")
CARDIOVASCULAR = (
    "hypertension",
    "diabetes",
    "hyperlipidemia",
    "coronary-artery-disease",
    "heart-failure",
    "obesity",
)
MEDICATIONS = ("estrogen-containing-medications", "prothrombotic-medications")


def risk_factors(inp: OrderInput) -> list[tuple[str, str]]:
    """(short name for the summary, evidence line) for every risk factor found."""
    ctx, kb, limits = inp.ctx, inp.kb, inp.thresholds
    found: list[tuple[str, str]] = []
    if ctx.age is not None and ctx.age >= limits.thrombosis_age:
        found.append((f"age {ctx.age}", f"Age ≥ {limits.thrombosis_age}: {evidence.age(ctx)}"))
    for name in HISTORY:
        found += [
            (c.label, evidence.condition(c, m))
            for c, m in ctx.conditions_in(kb.valueset(name), active_only=False)
        ]
    for name in ACTIVE:
        found += [
            (c.label, evidence.condition(c, m))
            for c, m in ctx.conditions_in(kb.valueset(name), active_only=True)
        ]
    triglycerides = ctx.latest("triglycerides")
    if (
        triglycerides
        and triglycerides.value is not None
        and triglycerides.value >= limits.triglycerides_mg_dl
    ):
        found.append(
            (
                "very high triglycerides",
                f"Hyperviscosity: {evidence.observation(triglycerides)} "
                f"(≥ {limits.triglycerides_mg_dl:g} mg/dL)",
            )
        )
    for name in MEDICATIONS:
        found += [
            (m.label, evidence.medication(m, how))
            for m, how in ctx.medications_in(kb.valueset(name))
        ]
    for name in CARDIOVASCULAR:
        found += [
            (c.label, f"Cardiovascular risk factor: {evidence.condition(c, m)}")
            for c, m in ctx.conditions_in(kb.valueset(name), active_only=True)
        ]
    found += [
        ("current smoking", f"Cardiovascular risk factor (current smoking): {line}")
        for line in current_smoking(inp)
    ]
    found += [("obesity", f"Cardiovascular risk factor (obesity): {line}") for line in obesity(inp)]
    return found


def check(inp: OrderInput) -> Finding | None:
    factors = risk_factors(inp)
    if not factors:
        return None
    names = ", ".join(dict.fromkeys(name for name, _ in factors))
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Thrombosis risk with {inp.order.product_name} (boxed warning): {names}",
        evidence=tuple(line for _, line in factors),
        recommendation=(
            "Give the minimum dose and infusion rate practicable, ensure adequate hydration before "
            "administration, and monitor for signs and symptoms of thrombosis. Assess blood "
            "viscosity in patients at risk of hyperviscosity."
        ),
        proposals=(
            hydration(
                inp, "Thrombosis risk (immune globulin boxed warning): hydrate before the infusion"
            ),
            minimum_rate(inp),
        ),
        notes=("Thrombosis may occur even without known risk factors.",),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="the thrombosis boxed warning",
    fires_when=(
        "any boxed-warning risk factor: age ≥ 65; history of venous or arterial thrombosis "
        "(any status); hypercoagulable condition; active immobilization, central venous "
        "catheter or hyperviscosity (myeloma, Waldenström, MGUS, cryoglobulinemia; "
        "triglycerides ≥ 1000 mg/dL); current estrogen or other listed prothrombotic drug; "
        "hypertension, diabetes, hyperlipidemia, coronary disease, heart failure, current "
        "smoking, obesity (BMI ≥ 30 or coded)"
    ),
    indicator="`warning`",
    suggests=(
        "pre-infusion hydration (MedicationRequest); minimum practicable rate (order update; "
        "rate cap 3.3 mg/kg/min where the label gives one)"
    ),
    reads=Reads(
        prefetch=frozenset(
            {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"}
        ),
        valuesets=(
            *HISTORY,
            *ACTIVE,
            *CARDIOVASCULAR,
            *MEDICATIONS,
            "tobacco-use",
            "current-smoker-answers",
        ),
        observations=("triglycerides", "smoking-status", *OBESITY_READS),
        thresholds=(
            "thrombosis_age",
            "triglycerides_mg_dl",
            "bmi_obese",
            "window_weight_days",
        ),
    ),
    check=check,
)
