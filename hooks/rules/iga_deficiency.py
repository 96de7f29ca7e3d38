"""iga-deficiency: selective IgA deficiency coded, or latest IgA < 7 mg/dL after age 4 (ESID).

Warning; critical when anti-IgA antibodies are documented or there is any documented reaction to
immune globulin, IgA or blood products (labels: contraindicated with anti-IgA antibodies and a
history of hypersensitivity). IgA deficiency has no recency window (contract §6): it does not
change.
"""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.catalogue import Product
from hooks.record import age_on
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput, conditions_in
from hooks.rules.hypersensitivity import documented_reactions

TOPIC = "iga-deficiency"
VALUESETS = ("iga-deficiency", "anti-iga-antibodies")
IGA_DEFICIENT_BELOW_MG_DL = 7.0  # ESID definitive selective IgA deficiency (reference §4b)
MIN_AGE_YEARS = 4  # ESID: age > 4 years


def _low_iga_lab(inp: RuleInput) -> str | None:
    latest = inp.record.latest("serum-iga")
    if latest is None or latest.value is None or latest.value >= IGA_DEFICIENT_BELOW_MG_DL:
        return None
    birth = inp.record.birth_date
    # The ESID criterion is about the age at the test: infants have physiologically low IgA.
    tested_on = latest.date or inp.record.today
    if birth is None or age_on(birth, tested_on) <= MIN_AGE_YEARS:
        return None
    return f"{evidence.observation(latest)} (below {IGA_DEFICIENT_BELOW_MG_DL:g} mg/dL after age 4)"


def _antibodies(inp: RuleInput) -> list[str]:
    antibodies = inp.kb.valueset("anti-iga-antibodies")
    found = [
        evidence.condition(c, m)
        for c, m in conditions_in(inp.record, antibodies, active_only=False)
    ]
    for allergy in inp.record.allergies:
        matched = antibodies.match(allergy.codes, [allergy.label])
        if matched:
            found.append(evidence.allergy(allergy, matched))
    return found


def lowest_iga_product(inp: RuleInput) -> Product | None:
    """The catalogue's low-IgA product with the least IgA that can be given by the ordered route."""
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
    candidates.sort(key=lambda p: p.iga_max_ug_per_ml if p.iga_max_ug_per_ml is not None else 1e9)
    return candidates[0] if candidates else None


def check(inp: RuleInput) -> Finding | None:
    coded = [
        evidence.condition(c, m)
        for c, m in conditions_in(inp.record, inp.kb.valueset("iga-deficiency"), active_only=False)
    ]
    lab = _low_iga_lab(inp)
    if not coded and lab is None:
        return None
    antibodies = _antibodies(inp)
    reactions = [line for _, line, _ in documented_reactions(inp)]
    critical = bool(antibodies or reactions)
    lines = tuple(coded + ([lab] if lab else []) + antibodies + reactions)
    notes = []
    suggestions = []
    if not antibodies:
        suggestions.append(
            ProposedSuggestion(
                "Order an anti-IgA antibody test",
                (
                    suggested_orders.create(
                        inp.kb,
                        "anti-iga-antibody",
                        inp.record,
                        inp.order,
                        "IgA deficiency before immune globulin: "
                        "anti-IgA antibodies raise the risk of anaphylaxis",
                    ),
                ),
            )
        )
        notes.append("No anti-IgA antibody result is documented.")
    ordered = inp.order.product
    if ordered is not None and ordered.low_iga:
        notes.append(f"{ordered.brand} is already a low-IgA product (IgA {ordered.iga_text}).")
    else:
        iga = (
            f"IgA {ordered.iga_text}" if ordered else "IgA content unknown: product not identified"
        )
        notes.append(f"Ordered product: {inp.order.product_name} ({iga}).")
        low = lowest_iga_product(inp)
        if low is not None:
            suggestions.append(
                ProposedSuggestion(
                    f"Switch to {low.brand} (low IgA: {low.iga_text})",
                    (
                        suggested_orders.switch_product(
                            inp.order,
                            low,
                            f"Low-IgA product chosen for IgA deficiency ({low.iga_text})",
                        ),
                    ),
                    recommended=critical,
                )
            )
    summary = (
        "IgA deficiency with anti-IgA antibodies or a prior reaction: high anaphylaxis risk"
        if critical
        else "IgA deficiency: risk of anaphylaxis with immune globulin"
    )
    return Finding(
        topic=TOPIC,
        indicator="critical" if critical else "warning",
        summary=summary,
        evidence=lines,
        recommendation=(
            "Immune globulin is contraindicated in IgA-deficient patients with antibodies "
            "against IgA and a history of hypersensitivity. Check anti-IgA antibodies; if immune "
            "globulin is needed, use the lowest-IgA product under specialist supervision."
        ),
        suggestions=tuple(suggestions),
        notes=tuple(notes),
    )
