"""ig-hypersensitivity: a documented reaction to immune globulin (contract §3; reference §4a).

Anaphylaxis or a severe systemic reaction to human immune globulin (criticality high, a severe
reaction, or coded anaphylaxis) is a class contraindication: critical, delete the order. Any other
documented reaction to immune globulin, IgA or blood products/plasma (contract §6): warning,
premedication and a slower rate per protocol.

Human immune globulin includes the hyperimmune human products (anti-D, hepatitis B, rabies,
tetanus, CMV, varicella-zoster, botulism immune globulin): the exclusion list of contract §1 is
for orders only. Animal-derived products (anti-thymocyte globulins, antivenoms, antitoxins,
digoxin Fab) and monoclonal antibodies are not human immune globulin (contract §8): an allergy
named so does not count, even when its text says "immune globulin", unless it is coded as human
immune globulin.
"""

from __future__ import annotations

import re

from hooks import evidence
from hooks.context.model import AllergyEntry
from hooks.findings import Finding, Proposal, RemoveOrder
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.common import instruction
from hooks.terminology import ConceptSet, Match

TOPIC = "ig-hypersensitivity"
# human immune globulin, then the related substances of a documented reaction (contract §6)
HUMAN_IG = ("immune-globulin-substance", "hyperimmune-globulin-substance")
RELATED = ("iga-substance", "blood-products")
NOT_HUMAN_IG = "non-human-globulins"
# the value sets documented_reactions reads (the iga-deficiency rule reads them through it)
SUBSTANCES = (*HUMAN_IG, *RELATED, NOT_HUMAN_IG)
# A monoclonal antibody's name ends in -mab (rituximab, eculizumab): the INN stem.
MONOCLONAL = re.compile(r"(?<![A-Za-z])[A-Za-z]{2,}mab(?![A-Za-z])", re.IGNORECASE)


def is_severe(allergy: AllergyEntry, inp: OrderInput) -> bool:
    anaphylaxis = inp.kb.valueset("anaphylaxis-reaction").match(
        allergy.manifestations, allergy.manifestation_labels
    )
    return allergy.criticality == "high" or allergy.severe_reaction or anaphylaxis is not None


def not_human_ig(allergy: AllergyEntry, inp: OrderInput) -> bool:
    """Its substance is named as an animal-derived globulin or a monoclonal antibody."""
    texts = (allergy.label, *(c.display for c in allergy.codes if c.display))
    return inp.kb.valueset(NOT_HUMAN_IG).match((), texts) is not None or any(
        MONOCLONAL.search(text) for text in texts
    )


def _first(concept_sets: list[ConceptSet], allergy: AllergyEntry) -> Match | None:
    return next(
        (m for cs in concept_sets if (m := cs.match(allergy.codes, (allergy.label,)))), None
    )


def documented_reactions(inp: OrderInput) -> list[tuple[AllergyEntry, str, bool]]:
    """(allergy, evidence line, is it to immune globulin itself) for every counting reaction.
    A text match does not count for a substance named as animal-derived or monoclonal; a code
    of human immune globulin does. The patient's, not the order's: found once per call."""
    return list(inp.ctx.derived_with("hypersensitivity.reactions", (inp.kb,), lambda: _read(inp)))


def severe_reactions(inp: OrderInput) -> list[AllergyEntry]:
    """The severe reactions to immune globulin itself, once per call."""

    def find() -> list[AllergyEntry]:
        return [a for a, _, to_ig in documented_reactions(inp) if to_ig and is_severe(a, inp)]

    return list(inp.ctx.derived_with("hypersensitivity.severe", (inp.kb,), find))


def _read(inp: OrderInput) -> list[tuple[AllergyEntry, str, bool]]:
    found = []
    human = [inp.kb.valueset(name) for name in HUMAN_IG]
    related = [inp.kb.valueset(name) for name in RELATED]
    for allergy in inp.ctx.allergies:
        to_ig = _first(human, allergy)
        matched = to_ig or _first(related, allergy)
        if matched is None or (matched.code is None and not_human_ig(allergy, inp)):
            continue
        found.append((allergy, evidence.allergy(allergy, matched), to_ig is not None))
    return found


def check(inp: OrderInput) -> Finding | None:
    reactions = documented_reactions(inp)
    if not reactions:
        return None
    severe = severe_reactions(inp)
    # The reactions the card's indicator rests on first: a card lists at most 20 lines, and 30
    # mild reactions recorded earlier must not push the anaphylaxis off it.
    first = {id(allergy) for allergy in severe}  # by identity: a set, not a scan per reaction
    lines = tuple(line for _, line, _ in sorted(reactions, key=lambda r: id(r[0]) not in first))
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
        "an allergy/intolerance to human immune globulin, hyperimmune products included (anti-D, "
        "hepatitis B, rabies, tetanus, CMV, varicella-zoster, botulism), or to IgA, blood "
        "products, plasma, that counts: not refuted, entered-in-error, inactive or resolved; "
        "not one named as an animal-derived globulin (anti-thymocyte globulin, antivenom, "
        "antitoxin, digoxin Fab) or a monoclonal antibody"
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
