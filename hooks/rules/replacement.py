"""ig-replacement-candidate: hypogammaglobulinemia (coded, or latest IgG < 400 mg/dL) with two or
more severe infections by encapsulated bacteria in the past 12 months, and no current immune
globulin: refer to immunology (contract §4). The ">= 2 infections" threshold is UNVERIFIED in the
reference (likely AAAAI 2017); the card says so.
"""

from __future__ import annotations

from hooks import evidence, suggested_orders
from hooks.rules.base import Finding, ProposedSuggestion, ViewInput, conditions_in

TOPIC = "ig-replacement-candidate"
MIN_INFECTIONS = 2
PAST_DAYS = 365


def _hypogammaglobulinemia(inp: ViewInput) -> list[str]:
    found = [
        evidence.condition(c, m)
        for name in ("hypogammaglobulinemia", "primary-immunodeficiency")
        for c, m in conditions_in(inp.record, inp.kb.valueset(name), active_only=False)
    ]
    igg = inp.record.latest("serum-igg")
    if igg is not None and igg.value is not None and igg.value < inp.thresholds.igg_low_mg_dl:
        found.append(f"{evidence.observation(igg)} (below {inp.thresholds.igg_low_mg_dl:g} mg/dL)")
    return found


def check(inp: ViewInput) -> Finding | None:
    if inp.current_ig:
        return None
    low = _hypogammaglobulinemia(inp)
    if not low:
        return None
    today = inp.record.today
    infections = [
        evidence.condition(c, m)
        for c, m in conditions_in(
            inp.record, inp.kb.valueset("encapsulated-bacterial-infections"), active_only=False
        )
        if c.date is not None and 0 <= (today - c.date).days <= PAST_DAYS
    ]
    if len(infections) < MIN_INFECTIONS:
        return None
    return Finding(
        topic=TOPIC,
        indicator="info",
        summary=(
            f"Hypogammaglobulinemia and {len(infections)} severe infections in 12 months: "
            f"consider immunoglobulin replacement"
        ),
        evidence=(*low, *infections),
        recommendation=(
            "Refer to clinical immunology to assess immunoglobulin replacement (severe or "
            "recurrent "
            "infections despite antimicrobials, with low IgG or failed vaccine responses)."
        ),
        suggestions=(
            ProposedSuggestion(
                "Refer to clinical immunology",
                (
                    suggested_orders.create_for_patient(
                        inp.kb,
                        "immunology-referral",
                        inp.record,
                        "Immunoglobulin replacement assessment",
                    ),
                ),
            ),
        ),
        notes=(
            "The threshold of two or more severe infections is UNVERIFIED in the seed reference "
            "(likely AAAAI 2017, Perez EE et al.); the EU SCIG indication asks for severe or "
            "recurrent infections and IgG < 4 g/L or proven specific antibody failure.",
        ),
    )
