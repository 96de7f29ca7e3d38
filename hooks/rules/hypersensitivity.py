"""ig-hypersensitivity: a documented reaction to immune globulin (contract §3; reference §4a).

Anaphylaxis or a severe systemic reaction to human immune globulin (criticality high, a severe
reaction, or coded anaphylaxis) is a class contraindication: critical, delete the order. Any other
documented reaction to immune globulin, IgA or blood products/plasma (contract §6): warning,
premedication and a slower rate per protocol.
"""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.record import AllergyEntry
from hooks.rules.base import Finding, ProposedSuggestion, RuleInput

TOPIC = "ig-hypersensitivity"
VALUESETS = ("immune-globulin-substance", "iga-substance", "blood-products", "anaphylaxis-reaction")


def is_severe(allergy: AllergyEntry, inp: RuleInput) -> bool:
    anaphylaxis = inp.kb.valueset("anaphylaxis-reaction").match(
        allergy.manifestations, allergy.manifestation_labels
    )
    return allergy.criticality == "high" or allergy.severe_reaction or anaphylaxis is not None


def documented_reactions(inp: RuleInput) -> list[tuple[AllergyEntry, str, bool]]:
    """(allergy, evidence line, is it to immune globulin itself) for every counting reaction."""
    found = []
    ig = inp.kb.valueset("immune-globulin-substance")
    related = (inp.kb.valueset("iga-substance"), inp.kb.valueset("blood-products"))
    for allergy in inp.record.allergies:
        matched = ig.match(allergy.codes, [allergy.label])
        if matched:
            found.append((allergy, evidence.allergy(allergy, matched), True))
            continue
        for concept_set in related:
            matched = concept_set.match(allergy.codes, [allergy.label])
            if matched:
                found.append((allergy, evidence.allergy(allergy, matched), False))
                break
    return found


def check(inp: RuleInput) -> Finding | None:
    reactions = documented_reactions(inp)
    if not reactions:
        return None
    lines = tuple(line for _, line, _ in reactions)
    severe = [allergy for allergy, _, to_ig in reactions if to_ig and is_severe(allergy, inp)]
    product = inp.order.product_name
    if severe:
        return Finding(
            topic=TOPIC,
            indicator="critical",
            summary=(
                "Contraindicated: prior anaphylaxis or severe reaction to immune globulin "
                f"({product})"
            ),
            evidence=lines,
            recommendation=(
                "Do not give immune globulin: a history of anaphylactic or severe systemic "
                "hypersensitivity to human immune globulin is a labelled contraindication. "
                "If treatment is essential, decide with an allergist/immunologist."
            ),
            suggestions=(
                ProposedSuggestion(
                    f"Remove the {product} order",
                    (suggested_orders.delete(inp.order),),
                    recommended=True,
                ),
            ),
            selection="at-most-one",
        )
    instruction = (
        "Premedicate and start at the lowest labelled infusion rate per institutional protocol "
        "(documented prior reaction)"
    )
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=(
            "Prior reaction to immune globulin or blood products: "
            f"premedicate, infuse slowly ({product})"
        ),
        evidence=lines,
        recommendation=(
            "A non-severe reaction is documented. Premedicate and infuse at a slower rate per "
            "protocol; have epinephrine available and monitor during the infusion."
        ),
        suggestions=(
            ProposedSuggestion(
                "Add premedication and slow-rate instructions to the order",
                (suggested_orders.with_instruction(inp.order, instruction),),
            ),
        ),
        selection="at-most-one",
    )
