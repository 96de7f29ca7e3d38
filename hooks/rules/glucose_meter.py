"""glucose-meter-interference: maltose products (Octagam, Cutaquig) falsely raise glucose
readings on GDH-PQQ / glucose-dye-oxidoreductase meters (FDA MedSun 2008). Warning with diabetes
(a switch to a maltose-free product is recommended: a falsely high reading treated with insulin
can cause fatal hypoglycaemia), else info."""

from __future__ import annotations

from hooks import evidence
from hooks.catalogue import Choice
from hooks.findings import Finding, ProductChange, Proposal, ReviseOrder
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import not_stocked
from hooks.rules.excipients import alternative

TOPIC = "glucose-meter-interference"


def check(inp: OrderInput) -> Finding | None:
    product = inp.order.product
    if product is None or "maltose" not in product.possible_excipients:
        return None
    diabetes = [
        evidence.condition(c, m)
        for c, m in inp.ctx.conditions_in(inp.kb.valueset("diabetes"), active_only=True)
    ]
    proposals: tuple[Proposal, ...] = ()
    choice = alternative(inp, {"maltose"}) if diabetes else Choice(None, None)
    other = choice.product
    if other is not None:  # a falsely high reading treated with insulin can kill: switch
        why = f"Maltose-free product ({other.brand}) for a patient with diabetes"
        change = ReviseOrder(inp.order.reference, (ProductChange(other, why),), why)
        proposals = (Proposal(f"Switch to {other.brand} (no maltose)", (change,), True),)
    return Finding(
        topic=TOPIC,
        indicator="warning" if diabetes else "info",
        proposals=proposals,
        summary=f"{product.brand} contains maltose: use glucose-specific tests, not GDH-PQQ meters",
        evidence=(f"{product.brand} contains maltose", *diabetes, *not_stocked(choice)),
        recommendation=(
            "Maltose can make blood glucose read falsely high on meters and strips based on "
            "GDH-PQQ or glucose-dye-oxidoreductase. Tell staff and the laboratory; use a "
            "glucose-specific method during and after the infusion."
        ),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="glucose meter interference by maltose products",
    fires_when="a maltose product (Octagam, Cutaquig)",
    indicator="`warning` with active diabetes, else `info`",
    suggests="with diabetes, the order on a maltose-free product; always: glucose-specific testing",
    reads=Reads(
        prefetch=frozenset({"conditions"}),
        valuesets=("diabetes",),
        knowledge=("dose-ranges.json",),  # the switch prefers a product labelled for the reason
    ),
    check=check,
)
