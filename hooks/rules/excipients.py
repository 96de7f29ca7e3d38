"""excipient-contraindication: the ordered product's excipient meets a patient finding (§1c, §4a).

Proline with hyperprolinemia, sorbitol with hereditary fructose intolerance (and, under 2 years,
unless a record rules it out: it may not yet be diagnosed), hyaluronidase or
polysorbate 80 with a hypersensitivity to it: critical; maltose (corn-derived) with corn allergy:
warning. A product that only possibly holds the excipient gives a warning. The suggestion switches
to a catalogue product without it, by the same route. The pairs are data
(``knowledge/excipient-rules.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from hooks import evidence
from hooks.catalogue import Choice
from hooks.context.model import age_on
from hooks.findings import Finding, ProductChange, Proposal, ReviseOrder
from hooks.knowledge_base.schema import Product
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import labelled_as, not_stocked
from hooks.text import NOT_CHECKED

TOPIC = "excipient-contraindication"


def _matches(inp: OrderInput, valueset: str, kind: str) -> list[str]:
    concept_set = inp.kb.valueset(valueset)
    if kind == "condition":
        return [
            evidence.condition(c, m)
            for c, m in inp.ctx.conditions_in(concept_set, active_only=False)
        ]
    return [evidence.allergy(a, m) for a, m in inp.ctx.allergies_in(concept_set)]


def alternative(inp: OrderInput, avoid: set[str]) -> Choice:
    """The first stocked catalogue product for the ordered route that surely holds none of
    ``avoid``, labelled for the route and the order's indication when one is (card contract
    §9); and the first over the whole catalogue (the card names it when it is not stocked)."""
    catalogue = inp.kb.catalogue
    found = catalogue.substitutes(
        inp.order.route, inp.order.product, labelled_as(inp), avoid, stocked_only=False
    )
    return catalogue.choice(found)


@dataclass(frozen=True)
class _YoungChild:
    lines: tuple[str, ...]
    critical: bool
    excipient: str
    condition: str  # what a record must rule out: "hereditary fructose intolerance"


def _young_child(inp: OrderInput, product: Product, found: set[str]) -> _YoungChild | None:
    """A sorbitol product for a child under ``sorbitol_hfi_age_years`` with no record that
    hereditary fructose intolerance has been excluded (card contract §8). The record that
    excludes it is the condition recorded as ruled out (a Condition whose verificationStatus is
    refuted)."""
    born, limit = inp.ctx.patient.birth_date, inp.thresholds.sorbitol_hfi_age_years
    if born is None or age_on(born, inp.ctx.today) >= limit:
        return None
    for rule in inp.kb.young_child_rules:
        certain = rule.excipient in product.excipients
        possible = certain or rule.excipient in product.excipients_unverified
        if rule.excipient in found or not possible:
            continue  # the condition itself is on record (said once), or no such excipient
        excluded = inp.kb.valueset(rule.excluded)
        if inp.ctx.refuted_in(excluded):
            continue
        how = _how(product, certain)
        condition = excluded.title.lower()
        lines = (
            f"{product.brand} {how} {rule.excipient}: {rule.basis}",
            f"Patient aged {_months(born, inp.ctx.today)} months (under {limit} years); no "
            f"record that {condition} has been excluded (to record that, enter {condition} "
            "as a condition with verification status refuted)",
        )
        return _YoungChild(
            lines, certain and rule.indicator == "critical", rule.excipient, condition
        )
    return None


def _months(born: date, today: date) -> int:
    return (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)


def check(inp: OrderInput) -> Finding | None:
    product = inp.order.product
    if product is None:
        return None
    lines: list[str] = []
    critical = False
    avoid: set[str] = set()
    for rule in inp.kb.excipient_rules:
        certain = rule.excipient in product.excipients
        if not certain and rule.excipient not in product.excipients_unverified:
            continue
        found = _matches(inp, rule.valueset, rule.kind)
        if not found:
            continue
        how = _how(product, certain)
        lines.append(f"{product.brand} {how} {rule.excipient}: {rule.basis}")
        lines += found
        critical = critical or (certain and rule.indicator == "critical")
        avoid.add(rule.excipient)
    young = _young_child(inp, product, avoid)
    if young is not None:
        lines += young.lines
        critical = critical or young.critical
        avoid.add(young.excipient)
    if not lines:
        return None
    proposals = []
    choice = alternative(inp, avoid)
    lines += not_stocked(choice)
    other = choice.product
    if other is not None:
        names = ", ".join(sorted(avoid))
        why = f"Product without {names} chosen for this patient"
        proposals.append(
            Proposal(
                f"Switch to {other.brand} (no {names})",
                (
                    ReviseOrder(
                        inp.order.reference,
                        (ProductChange(other, why),),
                        f"Change the product to {other.brand}",
                    ),
                ),
                recommended=critical,
            )
        )
    return Finding(
        topic=TOPIC,
        indicator="critical" if critical else "warning",
        summary=(
            f"{product.brand} contains {', '.join(sorted(avoid))}: not suitable for this patient"
            if young is None or len(avoid) > 1
            else f"{product.brand} contains {young.excipient}: not for a child under "
            f"{inp.thresholds.sorbitol_hfi_age_years} years unless {young.condition} "
            "is excluded"
        ),
        evidence=tuple(lines),
        recommendation=(
            "Choose an immune globulin product without this excipient"
            + (f", or record that {young.condition} has been excluded." if young else ".")
        ),
        proposals=tuple(proposals),
        selection="at-most-one",
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="product excipients against the patient's conditions and allergies",
    fires_when=(
        "the ordered product's excipient meets the patient: proline (Privigen, Hizentra) with "
        "hyperprolinemia; sorbitol (Flebogamma DIF, Gammaplex 5%) with hereditary fructose "
        "intolerance; hyaluronidase (HyQvia) or polysorbate 80 with a hypersensitivity to it; "
        "maltose (Octagam, corn-derived) with corn allergy; sucrose (Carimune NF) with CKD or "
        "AKI; a sorbitol product for a child under 2 years (threshold) unless a condition "
        "recorded as refuted says hereditary fructose intolerance was excluded"
    ),
    indicator=(
        "`critical`; `warning` for corn and sucrose, or when the product only possibly holds "
        'the excipient (a family entry such as bare "Gammaplex", or an unverified excipient)'
    ),
    suggests="switch to a catalogue product without it, same route (the whole order updated)",
    reads=Reads(
        prefetch=frozenset({"conditions", "allergies", "patient"}),
        thresholds=("sorbitol_hfi_age_years",),
        # dose-ranges.json: the order's indication, for a switch to a product labelled for it
        knowledge=("excipient-rules.json", "dose-ranges.json"),
    ),
    check=check,
)


def _how(product: Product, certain: bool) -> str:
    """How sure the catalogue is that the product holds the excipient, in a card's words."""
    if certain:
        return "contains"
    if product.family:
        return "may contain (not every product of the family)"
    return f"may contain ({NOT_CHECKED})"
