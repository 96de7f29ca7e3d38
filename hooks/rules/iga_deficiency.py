"""iga-deficiency: selective IgA deficiency coded, or latest IgA < 7 mg/dL after age 4 (ESID).

Critical (do not give) only with documented anti-IgA antibodies *and* a documented reaction to
immune globulin, IgA or blood products: the labels contraindicate immune globulin for exactly that
pair. Antibodies or a reaction alone: warning, the lowest-IgA product recommended. IgA deficiency
alone: warning, the anti-IgA test and the low-IgA product offered. IgA deficiency has no recency
window (contract §6): it does not change.
"""

from __future__ import annotations

from hooks import evidence
from hooks.catalogue import Choice
from hooks.context.model import age_on
from hooks.findings import Finding, ProductChange, Proposal, ReviseOrder
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import companion, not_stocked
from hooks.rules.comparisons import IGA_LOW
from hooks.rules.hypersensitivity import SUBSTANCES, documented_reactions

TOPIC = "iga-deficiency"


def _low_iga_lab(inp: OrderInput) -> str | None:
    latest = inp.ctx.latest("serum-iga")
    below, min_age = inp.thresholds.iga_deficient_below_mg_dl, inp.thresholds.iga_min_age_years
    # "<7 mg/dL" is below 7; "<10 mg/dL" is left open, and the data card names it
    if not IGA_LOW.holds(latest, inp.thresholds):
        return None
    assert latest is not None
    birth = inp.ctx.patient.birth_date
    # The ESID criterion is about the age at the test: infants have physiologically low IgA.
    tested_on = latest.date or inp.ctx.today
    if birth is None or age_on(birth, tested_on) <= min_age:
        return None
    return f"{evidence.observation(latest)} (below {below:g} mg/dL after age {min_age})"


def _antibodies(inp: OrderInput) -> list[str]:
    antibodies = inp.kb.valueset("anti-iga-antibodies")
    found = [
        evidence.condition(c, m) for c, m in inp.ctx.conditions_in(antibodies, active_only=False)
    ]
    found += [evidence.allergy(a, m) for a, m in inp.ctx.allergies_in(antibodies)]
    return found


def lowest_iga_product(inp: OrderInput) -> Choice:
    """The stocked low-IgA product with the least IgA that can be given by the ordered route,
    and the catalogue's (the card names it when the site does not stock it)."""
    current = inp.order.product
    candidates = [
        p
        for p in inp.kb.catalogue.products
        if p.low_iga
        and not p.family
        and not p.discontinued
        and inp.order.route in p.routes
        and (current is None or p.id != current.id)
    ]
    candidates.sort(key=lambda p: p.iga.max_ug_per_ml if p.iga.max_ug_per_ml is not None else 1e9)
    return inp.kb.catalogue.choice(candidates)


def check(inp: OrderInput) -> Finding | None:
    coded = [
        evidence.condition(c, m)
        for c, m in inp.ctx.conditions_in(inp.kb.valueset("iga-deficiency"), active_only=False)
    ]
    lab = _low_iga_lab(inp)
    if not coded and lab is None:
        return None
    antibodies = _antibodies(inp)
    reactions = [line for _, line, _ in documented_reactions(inp)]
    critical = bool(antibodies and reactions)  # the labelled contraindication: do not give
    prefer_low = bool(antibodies or reactions)
    lines = tuple(coded + ([lab] if lab else []) + antibodies + reactions)
    notes = []
    proposals = []
    if not antibodies:
        proposals.append(
            companion(
                "Order an anti-IgA antibody test",
                inp,
                "IgA deficiency before immune globulin: "
                "anti-IgA antibodies raise the risk of anaphylaxis",
                "anti-iga-antibody",
            )
        )
        notes.append("No anti-IgA antibody result is documented.")
    ordered = inp.order.product
    if ordered is not None and ordered.low_iga:
        notes.append(f"{ordered.brand} is already a low-IgA product (IgA {ordered.iga.shown}).")
    else:
        iga = (
            f"IgA {ordered.iga.shown}" if ordered else "IgA content unknown: product not identified"
        )
        notes.append(f"Ordered product: {inp.order.product_name} ({iga}).")
        choice = lowest_iga_product(inp)
        lines += not_stocked(  # the lowest-IgA product, when the site does not stock it
            choice, "the lowest-IgA product", "no other stocked product is low in IgA"
        )
        low = choice.product
        if low is not None:
            why = f"Low-IgA product chosen for IgA deficiency ({low.iga.shown})"
            label = f"Switch to {low.brand} (low IgA: {low.iga.shown})"
            if critical:  # an alternative to not giving it, never the recommendation
                label += ", only if immune globulin is unavoidable, under specialist supervision"
            proposals.append(
                Proposal(
                    label,
                    (
                        ReviseOrder(
                            inp.order.reference,
                            (ProductChange(low, why),),
                            f"Change the product to {low.brand}",
                        ),
                    ),
                    recommended=prefer_low and not critical,
                )
            )
    if critical:
        summary = "Do not give: IgA deficiency with anti-IgA antibodies and a prior reaction"
        recommendation = (
            "Immune globulin is contraindicated in IgA-deficient patients with antibodies "
            "against IgA and a history of hypersensitivity: remove the order. Only if immune "
            "globulin is unavoidable, the lowest-IgA product under specialist supervision."
        )
    elif prefer_low:
        what = "anti-IgA antibodies" if antibodies else "a prior reaction"
        summary = f"IgA deficiency with {what}: use the lowest-IgA product"
        recommendation = (
            "Anaphylaxis risk is higher with anti-IgA antibodies or an earlier reaction: use the "
            "lowest-IgA product, with premedication and a slow rate per protocol."
        )
    else:
        summary = "IgA deficiency: risk of anaphylaxis with immune globulin"
        recommendation = (
            "Check anti-IgA antibodies before the infusion; a low-IgA product lowers the risk. "
            "Immune globulin is contraindicated with anti-IgA antibodies and a history of "
            "hypersensitivity."
        )
    return Finding(
        topic=TOPIC,
        indicator="critical" if critical else "warning",
        summary=summary,
        evidence=lines,
        recommendation=recommendation,
        proposals=tuple(proposals),
        notes=tuple(notes),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="IgA deficiency",
    fires_when=(
        "selective IgA deficiency coded (D80.2, SNOMED CT 190979003), or latest IgA < 7 mg/dL "
        "in a patient older than 4 at the test"
    ),
    indicator=(
        "`warning`; `critical` (do not give) with documented anti-IgA antibodies and a "
        "documented reaction to immune globulin, IgA or blood products"
    ),
    suggests=(
        "order anti-IgA antibodies (by text: no verified LOINC); switch to the lowest-IgA "
        "catalogue product for the route"
    ),
    reads=Reads(
        prefetch=frozenset({"conditions", "observations", "allergies", "patient"}),
        valuesets=("iga-deficiency", "anti-iga-antibodies", *SUBSTANCES),
        observations=("serum-iga",),
        thresholds=("iga_deficient_below_mg_dl", "iga_min_age_years"),
    ),
    check=check,
)
