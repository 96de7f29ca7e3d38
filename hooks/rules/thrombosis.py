"""thrombosis-risk: any risk factor of the class boxed warning (reference §3a; contract §3).

Advanced age; history of venous or arterial thrombosis (any clinical status: a resolved DVT is
still a history); hypercoagulable conditions (any status: mostly lifelong); active immobilization,
central venous catheter and hyperviscosity (or triglycerides >= threshold); current estrogens or
other listed prothrombotic drugs; cardiovascular risk factors. Applies to IV and SC products.
"""

from __future__ import annotations

from hooks import evidence
from hooks.rules.base import Finding, RuleInput, conditions_in, medications_in
from hooks.rules.common import current_smoking, hydration, minimum_rate, obesity

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
VALUESETS = (
    *HISTORY,
    *ACTIVE,
    *CARDIOVASCULAR,
    *MEDICATIONS,
    "tobacco-use",
    "current-smoker-answers",
)


def risk_factors(inp: RuleInput) -> list[tuple[str, str]]:
    """(short name for the summary, evidence line) for every risk factor found."""
    record, kb, limits = inp.record, inp.kb, inp.thresholds
    found: list[tuple[str, str]] = []
    if record.age is not None and record.age >= limits.thrombosis_age:
        found.append(
            (f"age {record.age}", f"Age ≥ {limits.thrombosis_age}: {evidence.age(record)}")
        )
    for name in HISTORY:
        found += [
            (c.label, evidence.condition(c, m))
            for c, m in conditions_in(record, kb.valueset(name), active_only=False)
        ]
    for name in ACTIVE:
        found += [
            (c.label, evidence.condition(c, m))
            for c, m in conditions_in(record, kb.valueset(name), active_only=True)
        ]
    triglycerides = record.latest("triglycerides")
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
            for m, how in medications_in(record, kb.valueset(name))
        ]
    for name in CARDIOVASCULAR:
        found += [
            (c.label, f"Cardiovascular risk factor: {evidence.condition(c, m)}")
            for c, m in conditions_in(record, kb.valueset(name), active_only=True)
        ]
    found += [
        ("current smoking", f"Cardiovascular risk factor (current smoking): {line}")
        for line in current_smoking(inp)
    ]
    found += [("obesity", f"Cardiovascular risk factor (obesity): {line}") for line in obesity(inp)]
    return found


def check(inp: RuleInput) -> Finding | None:
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
        suggestions=(
            hydration(
                inp, "Thrombosis risk (immune globulin boxed warning): hydrate before the infusion"
            ),
            minimum_rate(inp),
        ),
        notes=("Thrombosis may occur even without known risk factors.",),
    )
