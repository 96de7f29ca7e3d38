"""Hepatitis B on anti-CD20 therapy (AGA 2015; contract §4).

hbv-reactivation: current rituximab/ocrelizumab/ofatumumab/obinutuzumab with HBsAg or anti-HBc
positive, or chronic hepatitis B, and no current entecavir or tenofovir: antiviral prophylaxis.
hbv-screening: current anti-CD20 therapy and no HBsAg or no anti-HBc result on file.
"""

from __future__ import annotations

import re

from hooks import evidence
from hooks.context.model import ObservationEntry
from hooks.findings import CreateOrder, Finding, Proposal
from hooks.rules.base import PATIENT_VIEW, PatientInput, PatientRule, Reads

REACTIVATION = "hbv-reactivation"
SCREENING = "hbv-screening"
MARKERS = (("hbsag", "HBsAg"), ("anti-hbc", "anti-HBc"))
_NEGATED = re.compile(r"\b(not|non|no|negative)[\s-]*(detected|reactive)?\b", re.IGNORECASE)


def positive(result: ObservationEntry, inp: PatientInput) -> bool:
    """A positive/detected/reactive answer, by code or by text that is not negated."""
    answers = inp.kb.valueset("positive-serology-answers")
    if any(answers.codes.get((c.system, c.code)) is not None for c in result.value_codes):
        return True
    text = " ".join(
        t for t in (result.original, *(c.display or "" for c in result.value_codes)) if t
    )
    return bool(text) and not _NEGATED.search(text) and answers.match([], [text]) is not None


def _anti_cd20(inp: PatientInput) -> list[str]:
    return [
        evidence.medication(m, how)
        for m, how in inp.ctx.medications_in(inp.kb.valueset("anti-cd20-medications"))
    ]


def _reactivation_evidence(inp: PatientInput) -> list[str]:
    found = []
    for concept, name in MARKERS:
        latest = inp.ctx.latest(concept)
        if latest is not None and positive(latest, inp):
            found.append(f"{name} positive: {evidence.observation(latest)}")
    found += [
        f"Chronic hepatitis B: {evidence.condition(c, m)}"
        for c, m in inp.ctx.conditions_in(inp.kb.valueset("chronic-hepatitis-b"), active_only=True)
    ]
    return found


def check_reactivation(inp: PatientInput) -> Finding | None:
    therapy = _anti_cd20(inp)
    if not therapy:
        return None
    markers = _reactivation_evidence(inp)
    if not markers:
        return None
    if inp.ctx.medications_in(inp.kb.valueset("hbv-antivirals")):
        return None
    why = "HBV reactivation prophylaxis during B-cell-depleting therapy (AGA 2015)"
    return Finding(
        topic=REACTIVATION,
        indicator="warning",
        summary="Hepatitis B reactivation risk on anti-CD20 therapy and no antiviral prophylaxis",
        evidence=(*therapy, *markers, "No current entecavir or tenofovir"),
        recommendation=(
            "B-cell-depleting agents carry a high risk of HBV reactivation in HBsAg-positive and "
            "in HBsAg-negative/anti-HBc-positive patients. Start antiviral prophylaxis (entecavir "
            "or tenofovir rather than lamivudine) and continue it at least 12 months after the "
            "last "
            "anti-CD20 dose."
        ),
        proposals=(
            Proposal(
                "Start antiviral prophylaxis (entecavir)",
                (CreateOrder("hbv-antiviral-prophylaxis", why),),
            ),
        ),
    )


def check_screening(inp: PatientInput) -> Finding | None:
    therapy = _anti_cd20(inp)
    if not therapy or check_reactivation(inp) is not None:
        return None
    missing = [(concept, name) for concept, name in MARKERS if inp.ctx.latest(concept) is None]
    if not missing:
        return None
    why = "Hepatitis B screening before and during anti-CD20 therapy (AGA 2015)"
    names = " and ".join(name for _, name in missing)
    return Finding(
        topic=SCREENING,
        indicator="info",
        summary=f"Hepatitis B screening on anti-CD20 therapy: no {names} result on file",
        evidence=(*therapy, *(f"No {name} result on file" for _, name in missing)),
        recommendation="Screen HBsAg and anti-HBc before and during B-cell-depleting therapy.",
        proposals=(
            Proposal(f"Order {names}", tuple(CreateOrder(concept, why) for concept, _ in missing)),
        ),
    )


READS = Reads(
    prefetch=frozenset(
        {"conditions", "observations", "medicationRequests", "medicationStatements"}
    ),
    valuesets=(
        "anti-cd20-medications",
        "hbv-antivirals",
        "chronic-hepatitis-b",
        "positive-serology-answers",
    ),
    observations=tuple(concept for concept, _ in MARKERS),
)

RULES = (
    PatientRule(
        topic=REACTIVATION,
        hooks=PATIENT_VIEW,
        checks="hepatitis B reactivation on anti-CD20 therapy",
        fires_when=(
            "current anti-CD20 therapy (rituximab, ocrelizumab, ofatumumab, obinutuzumab) with "
            "HBsAg or anti-HBc positive, or chronic hepatitis B, and no current entecavir or "
            "tenofovir"
        ),
        indicator="`warning`",
        suggests="antiviral prophylaxis (entecavir, ordered by text: no confirmed RxNorm code)",
        reads=READS,
        check=check_reactivation,
    ),
    PatientRule(
        topic=SCREENING,
        hooks=PATIENT_VIEW,
        checks="hepatitis B screening on anti-CD20 therapy",
        fires_when=(
            "current anti-CD20 therapy and no HBsAg or no anti-HBc result on file (not shown "
            "when `hbv-reactivation` fires)"
        ),
        indicator="`info`",
        suggests="the missing tests (LOINC 5196-1, 16933-4)",
        reads=READS,
        check=check_screening,
    ),
)
