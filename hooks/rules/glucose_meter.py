"""glucose-meter-interference: maltose products (Octagam, Cutaquig) falsely raise glucose
readings on GDH-PQQ / glucose-dye-oxidoreductase meters (FDA MedSun 2008). Warning with diabetes,
else info."""

from __future__ import annotations

from hooks import evidence
from hooks.rules.base import Finding, RuleInput, conditions_in

TOPIC = "glucose-meter-interference"


def check(inp: RuleInput) -> Finding | None:
    product = inp.order.product
    if product is None or "maltose" not in product.excipients | product.excipients_unverified:
        return None
    diabetes = [
        evidence.condition(c, m)
        for c, m in conditions_in(inp.record, inp.kb.valueset("diabetes"), active_only=True)
    ]
    return Finding(
        topic=TOPIC,
        indicator="warning" if diabetes else "info",
        summary=f"{product.brand} contains maltose: use glucose-specific tests, not GDH-PQQ meters",
        evidence=(f"{product.brand} contains maltose", *diabetes),
        recommendation=(
            "Maltose can make blood glucose read falsely high on meters and strips based on "
            "GDH-PQQ or glucose-dye-oxidoreductase. Tell staff and the laboratory; use a "
            "glucose-specific method during and after the infusion."
        ),
    )
