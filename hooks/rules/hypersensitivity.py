"""ig-hypersensitivity: a documented reaction to immune globulin (contract §3; reference §4a).

Anaphylaxis or a severe systemic reaction to human immune globulin (criticality high, a severe
reaction, or coded anaphylaxis) is a class contraindication: critical, delete the order. Any other
documented reaction to immune globulin, IgA or blood products/plasma (contract §6): warning,
premedication and a slower rate per protocol.
"""

from __future__ import annotations

from hooks import evidence
from hooks.context.model import AllergyEntry
from hooks.findings import Finding, Proposal, RemoveOrder
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import instruction

TOPIC = "ig-hypersensitivity"
SUBSTANCES = ("immune-globulin-substance", "iga-substance", "blood-products")


def is_severe(allergy: AllergyEntry, inp: OrderInput) -> bool:
    anaphylaxis = inp.kb.valueset("anaphylaxis-reaction").match(
        allergy.manifestations, allergy.manifestation_labels
    )
    return allergy.criticality == "high" or allergy.severe_reaction or anaphylaxis is not None


def documented_reactions(inp: OrderInput) -> list[tuple[AllergyEntry, str, bool]]:
    """(allergy, evidence line, is it to immune globulin itself) for every counting reaction."""
    found = []
    ig, *related = (inp.kb.valueset(name) for name in SUBSTANCES)
    for allergy in inp.ctx.allergies:
        matched = ig.match(allergy.codes, (allergy.label,))
        if matched:
            found.append((allergy, evidence.allergy(allergy, matched), True))
            continue
        for concept_set in related:
            matched = concept_set.match(allergy.codes, (allergy.label,))
            if matched:
                found.append((allergy, evidence.allergy(allergy, matched), False))
                break
    return found


def check(inp: OrderInput) -> Finding | None:
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
            proposals=(
                Proposal(
                    f"Remove the {product} order",
                    (RemoveOrder(inp.order.reference, f"Remove the {product} order"),),
                    recommended=True,
                ),
            ),
            selection="at-most-one",
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
        proposals=(
            instruction(
                inp,
                "Add premedication and slow-rate instructions to the order",
                "Premedicate and start at the lowest labelled infusion rate per institutional "
                "protocol (documented prior reaction)",
            ),
        ),
        selection="at-most-one",
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="hypersensitivity to immune globulin",
    fires_when=(
        "an allergy/intolerance to immune globulin (or to IgA, blood products, plasma) that "
        "counts: not refuted, entered-in-error, inactive or resolved"
    ),
    indicator=(
        "`critical` for anaphylaxis or a severe reaction to immune globulin (criticality high, "
        "severity severe, or coded anaphylaxis); else `warning`"
    ),
    suggests=(
        "critical: delete the order; warning: update the order with premedication and "
        "slow-rate instructions"
    ),
    reads=Reads(
        prefetch=frozenset({"allergies"}),
        valuesets=(*SUBSTANCES, "anaphylaxis-reaction"),
    ),
    check=check,
)
