"""renal-risk: IV immune globulin and any renal predisposing factor (IGIV boxed warning, §3b).

Renal insufficiency (CKD or AKI coded and active, latest eGFR below or creatinine above the
thresholds), diabetes, age > 65, volume depletion, sepsis, paraproteinemia, a current nephrotoxic
drug, or a sucrose-containing product. Subcutaneous products carry no renal boxed warning.
"""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.knowledge_base import KnowledgeBase
from hooks.record import PatientRecord
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput, conditions_in, medications_in
from hooks.rules.common import hydration, minimum_rate
from hooks.settings import Thresholds

TOPIC = "renal-risk"
CONDITIONS = (
    "chronic-kidney-disease",
    "acute-kidney-injury",
    "diabetes",
    "volume-depletion",
    "sepsis",
    "paraproteinemia",
)
VALUESETS = (*CONDITIONS, "nephrotoxic-medications")


def predisposing_factors(
    record: PatientRecord, kb: KnowledgeBase, limits: Thresholds
) -> list[tuple[str, str]]:
    """(short name, evidence line) for every renal predisposing factor of the patient."""
    found: list[tuple[str, str]] = []
    for name in CONDITIONS:
        found += [
            (c.label, evidence.condition(c, m))
            for c, m in conditions_in(record, kb.valueset(name), active_only=True)
        ]
    egfr = record.latest("egfr")
    if egfr and egfr.value is not None and egfr.value < limits.egfr:
        found.append(
            (
                f"eGFR {egfr.value:.0f}",
                f"Renal insufficiency: {evidence.observation(egfr)} (eGFR < {limits.egfr:g})",
            )
        )
    creatinine = record.latest("serum-creatinine")
    if creatinine and creatinine.value is not None and creatinine.value > limits.creatinine_mg_dl:
        found.append(
            (
                f"creatinine {creatinine.value:.2f} mg/dL",
                f"Renal insufficiency: {evidence.observation(creatinine)} "
                f"(> {limits.creatinine_mg_dl:g} mg/dL)",
            )
        )
    if record.age is not None and record.age > limits.renal_age:
        found.append((f"age {record.age}", f"Age > {limits.renal_age}: {evidence.age(record)}"))
    found += [
        (m.label, f"Nephrotoxic drug: {evidence.medication(m, how)}")
        for m, how in medications_in(record, kb.valueset("nephrotoxic-medications"))
    ]
    return found


def risk_factors(inp: RuleInput) -> list[tuple[str, str]]:
    """The patient's predisposing factors, and a sucrose-containing product."""
    found = predisposing_factors(inp.record, inp.kb, inp.thresholds)
    product = inp.order.product
    if product is not None and "sucrose" in product.excipients:
        found.append(
            (
                "sucrose-containing product",
                f"{product.brand} contains sucrose: renal failure is more common with "
                "sucrose-containing IGIV",
            )
        )
    return found


def check(inp: RuleInput) -> Finding | None:
    if inp.order.route != "IV":
        return None
    factors = risk_factors(inp)
    if not factors:
        return None
    notes = []
    if inp.order.product is None:
        notes.append("The product was not identified, so its sucrose content could not be checked.")
    why = "Renal risk (IGIV boxed warning): BUN and creatinine before the infusion"
    labs = ProposedSuggestion(
        "Order BUN and serum creatinine before the infusion",
        (
            suggested_orders.create(inp.kb, "bun", inp.record, inp.order, why),
            suggested_orders.create(inp.kb, "serum-creatinine", inp.record, inp.order, why),
        ),
    )
    names = ", ".join(dict.fromkeys(name for name, _ in factors))
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Renal failure risk with IV {inp.order.product_name} (boxed warning): {names}",
        evidence=tuple(line for _, line in factors),
        recommendation=(
            "Check BUN and serum creatinine before the infusion, ensure adequate hydration, give "
            "the minimum dose and infusion rate practicable, and monitor renal function and urine "
            "output."
        ),
        suggestions=(
            labs,
            hydration(inp, "Renal risk (IGIV boxed warning): hydrate before the infusion"),
            minimum_rate(inp),
        ),
        notes=tuple(notes),
    )
