"""excipient-contraindication: the ordered product's excipient meets a patient finding (§1c, §4a).

Proline with hyperprolinemia, sorbitol with hereditary fructose intolerance, hyaluronidase or
polysorbate 80 with a hypersensitivity to it: critical; maltose (corn-derived) with corn allergy:
warning. A product that only possibly holds the excipient gives a warning. The suggestion switches
to a catalogue product without it, by the same route.
"""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.catalogue import Product
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput, conditions_in

TOPIC = "excipient-contraindication"


def _matches(inp: RuleInput, valueset: str, kind: str) -> list[str]:
    concept_set = inp.kb.valueset(valueset)
    if kind == "condition":
        return [
            evidence.condition(c, m)
            for c, m in conditions_in(inp.record, concept_set, active_only=False)
        ]
    return [
        evidence.allergy(a, m)
        for a in inp.record.allergies
        if (m := concept_set.match(a.codes, [a.label]))
    ]


def alternative(inp: RuleInput, avoid: set[str]) -> Product | None:
    """The first catalogue product for the ordered route that surely holds none of ``avoid``."""
    current = inp.order.product
    for product in inp.kb.catalogue.products:
        if (
            not product.family
            and not product.discontinued
            and inp.order.route in product.routes
            and (current is None or product.id != current.id)
            and not (product.excipients | product.excipients_unverified) & avoid
        ):
            return product
    return None


def check(inp: RuleInput) -> Finding | None:
    product = inp.order.product
    if product is None:
        return None
    lines: list[str] = []
    indicators: list[str] = []
    avoid: set[str] = set()
    for rule in inp.kb.excipient_rules:
        certain = rule.excipient in product.excipients
        if not certain and rule.excipient not in product.excipients_unverified:
            continue
        found = _matches(inp, rule.valueset, rule.kind)
        if not found:
            continue
        how = (
            "contains"
            if certain
            else "may contain (unverified, or not every product of the family)"
        )
        lines.append(f"{product.brand} {how} {rule.excipient}: {rule.basis}")
        lines += found
        indicators.append(rule.indicator if certain else "warning")
        avoid.add(rule.excipient)
    if not lines:
        return None
    indicator = "critical" if "critical" in indicators else "warning"
    suggestions = []
    other = alternative(inp, avoid)
    if other is not None:
        why = f"Product without {', '.join(sorted(avoid))} chosen for this patient"
        suggestions.append(
            ProposedSuggestion(
                f"Switch to {other.brand} (no {', '.join(sorted(avoid))})",
                (suggested_orders.switch_product(inp.order, other, why),),
                recommended=indicator == "critical",
            )
        )
    return Finding(
        topic=TOPIC,
        indicator=indicator,  # type: ignore[arg-type]
        summary=(
            f"{product.brand} contains {', '.join(sorted(avoid))}: not suitable for this patient"
        ),
        evidence=tuple(lines),
        recommendation="Choose an immune globulin product without this excipient.",
        suggestions=tuple(suggestions),
        selection="at-most-one",
    )
