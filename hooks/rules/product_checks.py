"""What the ordered product's label and market status say about the order (card contract §8, §9).

- ``route-missing``: no route on an order of a product labelled for both routes (Gammagard
  Liquid, Gamunex-C, Gammaked). The IV checks run; the card says so. No revised order sets a
  route: which route is meant is the prescriber's to say.
- ``route-not-labelled``: a subcutaneous order for an indication the product is labelled for
  only intravenously (Gamunex-C SC is labelled for PI, not CIDP or ITP).
- ``discontinued-product``: a product the catalogue marks discontinued (Carimune NF), with the
  current alternatives: same route, labelled for it and for the indication where one is,
  not discontinued (§9 product substitution); the switch offered passes every check on re-check.
"""

from __future__ import annotations

from hooks.findings import Finding, ProductChange, Proposal, ReviseOrder
from hooks.knowledge_base.schema import Product
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import labelled_as, not_stocked
from hooks.rules.indications import indications_of

ROUTE_MISSING = "route-missing"
ROUTE_NOT_LABELLED = "route-not-labelled"
DISCONTINUED = "discontinued-product"
MAX_NAMED = 6  # alternatives named on a card; the rest are counted
ROUTE_NAMES = {"IV": "intravenously", "SC": "subcutaneously"}


def _named(products: list[Product]) -> str:
    names = [p.brand for p in products[:MAX_NAMED]]
    more = len(products) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def route_missing(inp: OrderInput) -> Finding | None:
    product = inp.order.product
    if product is None or not inp.order.route_assumed or len(product.routes) < 2:
        return None
    routes = " and ".join(product.routes)
    return Finding(
        topic=ROUTE_MISSING,
        indicator="warning",
        summary=f"{product.brand}: route not given; IV assumed for the checks",
        evidence=(f"{product.brand} is labelled for {routes} use: {inp.order.route_basis}",),
        recommendation=(
            "State the route on the order. The checks ran for intravenous use (the renal "
            "boxed warning and the IV dose); if it is to be given subcutaneously, the "
            "subcutaneous dose conversion and infusion-site limits were not checked."
        ),
    )


def route_not_labelled(inp: OrderInput) -> Finding | None:
    product = inp.order.product
    order = inp.order
    if product is None or order.route != "SC" or order.route_assumed or "IV" not in product.routes:
        return None
    by_valueset = {r.valueset: r for r in inp.kb.dose_ranges}
    found = [
        f
        for f in indications_of(order.order, inp.ctx, inp.kb.valuesets, by_valueset)
        if by_valueset[f.valueset].labelled_as
    ]
    if not found:
        return None
    sc, iv = product.labelled_for("SC"), product.labelled_for("IV")
    labels = {label for f in found for label in by_valueset[f.valueset].labelled_as}
    if labels & sc or not labels & iv:
        return None  # labelled SC for one of them, or not labelled for them by either route
    wanted = sorted(labels & iv)
    catalogue = inp.kb.catalogue
    every = [
        p
        for p in catalogue.substitutes("SC", product, labels, stocked_only=False)
        if p.labelled_for("SC") & labels
    ]
    others = [p for p in every if catalogue.is_stocked(p)]
    elsewhere = (
        f", or choose a subcutaneous product labelled for it ({_named(others)})" if others else ""
    )
    stocked_note = not_stocked(catalogue.choice(every))
    shown = ", ".join(sorted(sc)) or "no indication"
    return Finding(
        topic=ROUTE_NOT_LABELLED,
        indicator="warning",
        summary=(
            f"{product.brand} subcutaneous is not labelled for {', '.join(wanted)} "
            "(labelled IV for it)"
        ),
        evidence=(
            f"{product.brand} is labelled subcutaneously for {shown}; intravenously for "
            f"{', '.join(sorted(iv))}",
            *(f.evidence for f in found),
            *stocked_note,
        ),
        recommendation=(
            f"Give {product.brand} intravenously for {', '.join(wanted)}{elsewhere}; or "
            "document why subcutaneous use outside the label is intended."
        ),
    )


def discontinued(inp: OrderInput) -> Finding | None:
    product = inp.order.product
    if product is None or not product.discontinued:
        return None
    status = product.discontinued_note or "discontinued"
    catalogue = inp.kb.catalogue
    every = catalogue.substitutes(inp.order.route, product, labelled_as(inp), stocked_only=False)
    others = [p for p in every if catalogue.is_stocked(p)]
    route = ROUTE_NAMES[inp.order.route]
    stocked_note = not_stocked(catalogue.choice(every))
    evidence = (f"{product.brand}: {status} (product catalogue)", *stocked_note)
    proposals: tuple[Proposal, ...] = ()
    if others:
        first = others[0]
        why = f"{product.brand} is discontinued: a current product"
        change = ReviseOrder(
            inp.order.reference,
            (ProductChange(first, why),),
            f"Change the product to {first.brand}",
        )
        proposals = (Proposal(f"Switch to {first.brand} (current product)", (change,), True),)
    return Finding(
        topic=DISCONTINUED,
        indicator="warning",
        summary=f"{product.brand} is discontinued: order a current product",
        evidence=evidence,
        recommendation=(
            f"Order a current immune globulin product given {route}"
            + (f": {_named(others)}." if others else ".")
            + " A record of past use is not affected."
        ),
        proposals=proposals,
        selection="at-most-one",
    )


RULES = (
    OrderRule(
        topic=ROUTE_MISSING,
        hooks=ORDER_HOOKS,
        checks="a route on orders of products labelled for both routes",
        fires_when=(
            "no route on an order of a product labelled IV and SC (Gammagard Liquid, "
            "Gamunex-C, Gammaked): IV is assumed for the checks"
        ),
        indicator="`warning`",
        suggests="none (no revised order sets a route); the card says to state it",
        reads=Reads(prefetch=frozenset()),
        check=route_missing,
    ),
    OrderRule(
        topic=ROUTE_NOT_LABELLED,
        hooks=ORDER_HOOKS,
        checks="the subcutaneous route against the product's labelled indications",
        fires_when=(
            "a subcutaneous order for an indication the product is labelled for only "
            "intravenously (Gamunex-C, Gammagard Liquid SC: PI only)"
        ),
        indicator="`warning`",
        suggests="none; the card names SC products labelled for the indication",
        reads=Reads(
            prefetch=frozenset({"conditions"}),
            knowledge=("dose-ranges.json",),  # the order's indications, as labels name them
        ),
        check=route_not_labelled,
    ),
    OrderRule(
        topic=DISCONTINUED,
        hooks=ORDER_HOOKS,
        checks="discontinued products",
        fires_when="the ordered product is discontinued (Carimune NF)",
        indicator="`warning`",
        suggests=(
            "switch to a current product of the same route, labelled for the indication where "
            "one is (the whole order updated)"
        ),
        reads=Reads(
            prefetch=frozenset({"conditions"}),
            knowledge=("dose-ranges.json",),  # the switch prefers a product labelled for it
        ),
        check=discontinued,
    ),
)
