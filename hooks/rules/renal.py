"""renal-risk: IV immune globulin and any renal predisposing factor (IGIV boxed warning, §3b).

Renal insufficiency (CKD or AKI coded and active, latest eGFR below or creatinine above the
thresholds), diabetes, age > 65, volume depletion, sepsis, paraproteinemia, a current nephrotoxic
drug, or a sucrose-containing product. Subcutaneous products carry no renal boxed warning.
"""

from __future__ import annotations

from hooks import evidence
from hooks.context.model import ClinicalContext
from hooks.findings import Finding
from hooks.knowledge_base import KnowledgeBase, Thresholds
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import companion, hydration, minimum_rate

TOPIC = "renal-risk"
CONDITIONS = (
    "chronic-kidney-disease",
    "acute-kidney-injury",
    "diabetes",
    "volume-depletion",
    "sepsis",
    "paraproteinemia",
)
MEDICATIONS = ("nephrotoxic-medications",)
OBSERVATIONS = ("egfr", "serum-creatinine")
THRESHOLDS = ("renal_age", "egfr", "creatinine_mg_dl")


def predisposing_factors(
    ctx: ClinicalContext, kb: KnowledgeBase, limits: Thresholds
) -> list[tuple[str, str]]:
    """(short name, evidence line) for every renal predisposing factor of the patient."""
    found: list[tuple[str, str]] = []
    for name in CONDITIONS:
        found += [
            (c.label, evidence.condition(c, m))
            for c, m in ctx.conditions_in(kb.valueset(name), active_only=True)
        ]
    egfr = ctx.latest("egfr")
    if egfr and egfr.value is not None and egfr.value < limits.egfr:
        found.append(
            (
                f"eGFR {egfr.value:.0f}",
                f"Renal insufficiency: {evidence.observation(egfr)} (eGFR < {limits.egfr:g})",
            )
        )
    creatinine = ctx.latest("serum-creatinine")
    if creatinine and creatinine.value is not None and creatinine.value > limits.creatinine_mg_dl:
        found.append(
            (
                f"creatinine {creatinine.value:.2f} mg/dL",
                f"Renal insufficiency: {evidence.observation(creatinine)} "
                f"(> {limits.creatinine_mg_dl:g} mg/dL)",
            )
        )
    if ctx.age is not None and ctx.age > limits.renal_age:
        found.append((f"age {ctx.age}", f"Age > {limits.renal_age}: {evidence.age(ctx)}"))
    for name in MEDICATIONS:
        found += [
            (m.label, f"Nephrotoxic drug: {evidence.medication(m, how)}")
            for m, how in ctx.medications_in(kb.valueset(name))
        ]
    return found


def risk_factors(inp: OrderInput) -> list[tuple[str, str]]:
    """The patient's predisposing factors, and a sucrose-containing product."""
    found = predisposing_factors(inp.ctx, inp.kb, inp.thresholds)
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


def check(inp: OrderInput) -> Finding | None:
    if inp.order.route != "IV":
        return None
    factors = risk_factors(inp)
    if not factors:
        return None
    notes = []
    if inp.order.product is None:
        notes.append("The product was not identified, so its sucrose content could not be checked.")
    why = "Renal risk (IGIV boxed warning): BUN and creatinine before the infusion"
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
        proposals=(
            companion(
                "Order BUN and serum creatinine before the infusion",
                inp,
                why,
                "bun",
                "serum-creatinine",
            ),
            hydration(inp, "Renal risk (IGIV boxed warning): hydrate before the infusion"),
            minimum_rate(inp),
        ),
        notes=tuple(notes),
    )


READS = Reads(
    prefetch=frozenset(
        {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"}
    ),
    valuesets=(*CONDITIONS, *MEDICATIONS),
    observations=OBSERVATIONS,
    thresholds=THRESHOLDS,
)

RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="the renal boxed warning (IV)",
    fires_when=(
        "IV route and any of: active CKD or AKI, latest eGFR < 60, latest creatinine > 1.3 "
        "mg/dL, active diabetes, age > 65, volume depletion, sepsis, paraproteinemia, a "
        "current nephrotoxic drug, a sucrose-containing product"
    ),
    indicator="`warning`",
    suggests="BUN and creatinine (ServiceRequests, LOINC 3094-0, 2160-0); hydration; minimum rate",
    reads=READS,
    check=check,
)
