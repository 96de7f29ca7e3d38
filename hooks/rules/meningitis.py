"""aseptic-meningitis-risk: a history of migraine and a high-dose course (>= 2 g/kg). The labels
note migraine patients may be more susceptible, and the syndrome is more frequent at high doses."""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.dosing import Dose, read_dose
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput, conditions_in
from hooks.rules.common import hydration

TOPIC = "aseptic-meningitis-risk"


def check(inp: RuleInput) -> Finding | None:
    migraine = [
        evidence.condition(c, m)
        for c, m in conditions_in(inp.record, inp.kb.valueset("migraine"), active_only=False)
    ]
    if not migraine:
        return None
    dose = read_dose(
        inp.order.resource,
        inp.record.latest_within("body-weight", inp.thresholds.window_weight_days),
    )
    if not isinstance(dose, Dose) or not dose.high_dose:
        return None
    text = "Infuse slowly: aseptic meningitis is more frequent with high doses and fast infusion"
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=(
            f"Migraine history and a {dose.course_g_per_kg:g} g/kg course: aseptic meningitis risk"
        ),
        evidence=(*migraine, *dose.steps),
        recommendation=(
            "Use a slower infusion rate and hydrate; counsel on headache, neck stiffness and fever."
        ),
        suggestions=(
            ProposedSuggestion(
                "Slower infusion rate", (suggested_orders.with_instruction(inp.order, text),)
            ),
            hydration(inp, "Aseptic meningitis risk: hydrate before the infusion"),
        ),
    )
