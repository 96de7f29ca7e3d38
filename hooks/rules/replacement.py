"""ig-replacement-candidate: hypogammaglobulinemia (coded, or latest IgG < 400 mg/dL) with two or
more severe infections by encapsulated bacteria in the past 12 months, and no current immune
globulin: refer to immunology (contract §4). The ">= 2 infections" threshold is UNVERIFIED in the
reference (likely AAAAI 2017); the card says so.
"""

from __future__ import annotations

from hooks import evidence
from hooks.context.read import within_days
from hooks.findings import CreateOrder, Finding, Proposal
from hooks.rules.base import PATIENT_VIEW, PatientInput, PatientRule, Reads
from hooks.rules.common import low_igg
from hooks.text import NOT_CHECKED

TOPIC = "ig-replacement-candidate"
LOW_IGG = ("hypogammaglobulinemia", "primary-immunodeficiency")


def _hypogammaglobulinemia(inp: PatientInput) -> list[str]:
    return low_igg(inp.ctx, inp.kb, inp.thresholds, LOW_IGG, active_only=False)


def check(inp: PatientInput) -> Finding | None:
    if inp.ctx.current_ig:
        return None
    low = _hypogammaglobulinemia(inp)
    if not low:
        return None
    today, t = inp.ctx.today, inp.thresholds
    infections = [
        evidence.condition(c, m)
        for c, m in inp.ctx.conditions_in(
            inp.kb.valueset("encapsulated-bacterial-infections"), active_only=False
        )
        if within_days(today, c.date, t.replacement_lookback_days)
    ]
    if len(infections) < t.replacement_min_infections:
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
        proposals=(
            Proposal(
                "Refer to clinical immunology",
                (CreateOrder("immunology-referral", "Immunoglobulin replacement assessment"),),
            ),
        ),
        notes=(
            f"The threshold of two or more severe infections: {NOT_CHECKED} (likely AAAAI "
            "2017, Perez EE et al.); the EU SCIG indication asks for severe or recurrent "
            "infections and IgG < 4 g/L or proven specific antibody failure.",
        ),
    )


RULE = PatientRule(
    topic=TOPIC,
    hooks=PATIENT_VIEW,
    checks="candidates for immunoglobulin replacement",
    fires_when=(
        "hypogammaglobulinemia (coded, or IgG < 400 mg/dL) and two or more severe infections "
        "with encapsulated bacteria (pneumococcal, H. influenzae, meningococcal pneumonia, "
        "sepsis or meningitis) in the past 12 months, and no current immune globulin"
    ),
    indicator="`info`",
    suggests="referral to clinical immunology",
    reads=Reads(
        prefetch=frozenset(
            {"conditions", "observations", "medicationRequests", "medicationStatements"}
        ),
        valuesets=(*LOW_IGG, "encapsulated-bacterial-infections"),
        observations=("serum-igg",),
        thresholds=("igg_low_mg_dl", "replacement_min_infections", "replacement_lookback_days"),
    ),
    check=check,
)
