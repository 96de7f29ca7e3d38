"""Hepatitis B with anti-CD20 therapy (AGA 2015; contract §4, §8 "Patient-view, HBV").

The rules apply while anti-CD20 therapy (rituximab, ocrelizumab, ofatumumab, obinutuzumab) is
current, or was given within ``anti_cd20_lookback_days``: a stopped or completed record counts by
its date (MedicationRequest ``authoredOn``; MedicationStatement ``effectiveDateTime``, else
``dateAsserted``); an undated one does not, since nothing says it falls in the window.

hbv-reactivation: HBsAg or anti-HBc positive, or chronic hepatitis B, and no current entecavir or
tenofovir: antiviral prophylaxis. An anti-HBc that is the only marker (HBsAg negative) and was drawn
while immune globulin was current, or within ``hbv_passive_anti_hbc_days`` of an administration,
may be passively acquired: same tier and recommendation, and the card says so and asks for HBV DNA
and any earlier anti-HBc.

The antiviral is entecavir (Baraclude label): 0.5 mg by mouth once daily on an empty stomach from
16 years at a creatinine clearance of at least 50 mL/min; the label's reduced once-daily dose (the
0.05 mg/mL oral solution) below that. The clearance is Cockcroft-Gault, from the latest creatinine
within ``window_renal_days``, a weight within ``window_weight_days``, the age and the recorded sex;
without such a weight (or sex), the latest eGFR within ``window_renal_days`` stands for it; with
creatinine alone, or no renal result at all, or under 16 years, the dose is text only (and a
missing renal result is offered as an order).

hbv-screening: anti-CD20 therapy and no HBsAg or no anti-HBc result on file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from hooks import evidence
from hooks.body_weight import WEIGHT_THRESHOLDS, recent_weight
from hooks.context.model import IgHistory, ObservationEntry
from hooks.context.read import days_since, within_days
from hooks.courses import last_administration, record_days
from hooks.evidence import plain_number
from hooks.findings import CreateOrder, Finding, Proposal
from hooks.rules.base import PATIENT_VIEW, PatientInput, PatientRule, Reads
from hooks.text import NOT_CHECKED, record

REACTIVATION = "hbv-reactivation"
SCREENING = "hbv-screening"
MARKERS = (("hbsag", "HBsAg"), ("anti-hbc", "anti-HBc"))
RENAL = ("serum-creatinine", "egfr")
_NEGATED = re.compile(r"\b(not|non|no|negative)[\s-]*(detected|reactive)?\b", re.IGNORECASE)
EMPTY_STOMACH = "on an empty stomach (at least 2 hours after a meal and 2 hours before the next)"
PASSIVE = (
    "anti-HBc may be passively acquired from immune globulin; check HBV DNA and any earlier "
    "anti-HBc."
)
PASSIVE_SOURCE = (
    "Passive transfer of anti-HBc by immune globulin: Parker S et al., BMC Infect Dis "
    "2014;14:99 (https://doi.org/10.1186/1471-2334-14-99); Ilboudo CM et al., F1000Research "
    "2013;2:249."
)


def positive(result: ObservationEntry, inp: PatientInput) -> bool:
    """A positive/detected/reactive answer, by code or by text that is not negated."""
    answers = inp.kb.valueset("positive-serology-answers")
    if any(answers.codes.get((c.system, c.code)) is not None for c in result.value_codes):
        return True
    text = " ".join(
        t for t in (result.original, *(c.display or "" for c in result.value_codes)) if t
    )
    return bool(text) and not _NEGATED.search(text) and answers.match([], [text]) is not None


@dataclass(frozen=True)
class AntiCd20:
    """Anti-CD20 therapy that makes the hepatitis B rules apply: evidence lines, and the date of
    the latest record (None: a current one, the therapy goes on)."""

    lines: tuple[str, ...]
    latest: date | None


def anti_cd20(inp: PatientInput) -> AntiCd20 | None:
    ctx, window = inp.ctx, inp.thresholds.anti_cd20_lookback_days
    drugs = inp.kb.valueset("anti-cd20-medications")
    current = [evidence.medication(m, how) for m, how in ctx.medications_in(drugs)]
    if current:
        return AntiCd20(tuple(current), None)
    recent = sorted(
        (
            (m.authored, f"{evidence.medication(m, found)}, {m.authored} (within {window} days)")
            for m in ctx.past_medications
            if within_days(ctx.today, m.authored, window) and (found := ctx.match(m, drugs))
        ),
        reverse=True,
    )
    if not recent:
        return None
    return AntiCd20(tuple(line for _, line in recent), recent[0][0])


def _markers(inp: PatientInput) -> dict[str, ObservationEntry]:
    """The positive markers, by concept."""
    found = {}
    for concept, _ in MARKERS:
        latest = inp.ctx.latest(concept)
        if latest is not None and positive(latest, inp):
            found[concept] = latest
    return found


def _ig_at(history: IgHistory, drawn: date, days: int) -> bool:
    """Immune globulin was current when ``drawn``, or last given at most ``days`` before it."""
    first = record_days(history).first
    if first is not None and first > drawn:
        return False
    if history.current:
        return True
    last = last_administration(history)
    return last is not None and days_since(drawn, last) <= days


def passive_anti_hbc(inp: PatientInput, markers: dict[str, ObservationEntry]) -> list[str]:
    """Evidence that the positive anti-HBc may come from immune globulin: it is the only marker,
    HBsAg is on file and negative, and immune globulin was given around the draw."""
    ctx, days = inp.ctx, inp.thresholds.hbv_passive_anti_hbc_days
    anti_hbc, hbsag = markers.get("anti-hbc"), ctx.latest("hbsag")
    if anti_hbc is None or anti_hbc.date is None or "hbsag" in markers or hbsag is None:
        return []
    if ctx.conditions_in(inp.kb.valueset("chronic-hepatitis-b"), active_only=True):
        return []
    given = [h for h in ctx.ig_history if _ig_at(h, anti_hbc.date, days)]
    if not given:
        return []
    return [
        f"HBsAg not positive: {evidence.observation(hbsag)}",
        *(
            f"Immune globulin around the anti-HBc of {anti_hbc.date}: "
            f"{record(h.order.reference)}: {h.order.product_name}, {record(h.status)}, last "
            f"given {last_administration(h) or 'on an undated day'}"
            for h in given
        ),
    ]


# -- entecavir ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clearance:
    """The renal function the entecavir dose is chosen on (mL/min), and how it was found."""

    value: float
    lines: tuple[str, ...]


def cockcroft_gault(inp: PatientInput) -> Clearance | None:
    """Cockcroft-Gault creatinine clearance from a recent creatinine and weight, the age and the
    recorded sex; the arithmetic is written out for the card."""
    ctx, t = inp.ctx, inp.thresholds
    creatinine = ctx.latest_within("serum-creatinine", t.window_renal_days)
    weight = recent_weight(ctx, t)  # a plausible weight only, as for every per-kg figure
    age, sex = ctx.age, ctx.patient.gender
    if (
        creatinine is None
        or creatinine.value is None
        or creatinine.value <= 0
        or weight is None
        or weight.value is None
        or weight.value <= 0
        or age is None
        or sex not in ("male", "female")
    ):
        return None
    base, divisor = t.cockcroft_gault_age_base, t.cockcroft_gault_divisor
    numerator = (base - age) * weight.value
    denominator = divisor * creatinine.value
    female = sex == "female"
    factor = t.cockcroft_gault_female_factor if female else 1.0
    value = numerator / denominator * factor
    sex_step = f" × {plain_number(factor)} (female)" if female else ""
    arithmetic = (
        f"Creatinine clearance (Cockcroft-Gault): ({plain_number(base)} − {age} years) × "
        f"{plain_number(weight.value)} kg ÷ ({plain_number(divisor)} × "
        f"{plain_number(creatinine.value)} mg/dL){sex_step} = {plain_number(numerator)} ÷ "
        f"{plain_number(denominator)}{sex_step} = {value:.1f} mL/min ({sex}, {age} years)"
    )
    return Clearance(
        value,
        (
            f"Creatinine: {evidence.observation(creatinine)}",
            f"Weight: {evidence.observation(weight)}",
            arithmetic,
        ),
    )


def clearance(inp: PatientInput) -> Clearance | None:
    """Cockcroft-Gault, else a recent eGFR in its place."""
    found = cockcroft_gault(inp)
    if found is not None:
        return found
    egfr = inp.ctx.latest_within("egfr", inp.thresholds.window_renal_days)
    if egfr is None or egfr.value is None:
        return None
    return Clearance(
        egfr.value,
        (
            f"eGFR: {evidence.observation(egfr)}",
            f"eGFR {plain_number(egfr.value)} used for the entecavir dose in place of a "
            "creatinine clearance (no recent weight, or no recorded sex, for Cockcroft-Gault)",
        ),
    )


@dataclass(frozen=True)
class Dose:
    orderable: str
    label: str  # the suggestion's label
    text: str  # the dose as the card writes it


def entecavir_dose(value: float, inp: PatientInput) -> Dose:
    """The Baraclude label's dose for a creatinine clearance (nucleoside-naive patients)."""
    t = inp.thresholds
    full, moderate, severe = (
        plain_number(t.entecavir_crcl_full_dose),
        plain_number(t.entecavir_crcl_moderate),
        plain_number(t.entecavir_crcl_severe),
    )
    if value >= t.entecavir_crcl_full_dose:
        return Dose(
            "entecavir-0.5mg-daily",
            "Order entecavir 0.5 mg by mouth once daily",
            f"entecavir 0.5 mg by mouth once daily {EMPTY_STOMACH} (clearance ≥ {full} mL/min)",
        )
    solution = "of the 0.05 mg/mL oral solution"
    if value >= t.entecavir_crcl_moderate:
        return Dose(
            "entecavir-0.25mg-daily",
            "Order entecavir 0.25 mg (oral solution) by mouth once daily",
            f"entecavir 0.25 mg (5 mL {solution}) by mouth once daily {EMPTY_STOMACH}, or 0.5 mg "
            f"every 48 hours (clearance {moderate} to < {full} mL/min)",
        )
    if value >= t.entecavir_crcl_severe:
        return Dose(
            "entecavir-0.15mg-daily",
            "Order entecavir 0.15 mg (oral solution) by mouth once daily",
            f"entecavir 0.15 mg (3 mL {solution}) by mouth once daily {EMPTY_STOMACH}, or 0.5 mg "
            f"every 72 hours (clearance {severe} to < {moderate} mL/min)",
        )
    return Dose(
        "entecavir-0.05mg-daily",
        "Order entecavir 0.05 mg (oral solution) by mouth once daily",
        f"entecavir 0.05 mg (1 mL {solution}) by mouth once daily {EMPTY_STOMACH}, or 0.5 mg "
        f"every 7 days; on dialysis days after the session (clearance < {severe} mL/min, "
        "hemodialysis or CAPD)",
    )


def _dose_table(inp: PatientInput) -> str:
    t = inp.thresholds
    full, moderate, severe = (
        plain_number(t.entecavir_crcl_full_dose),
        plain_number(t.entecavir_crcl_moderate),
        plain_number(t.entecavir_crcl_severe),
    )
    return (
        f"entecavir 0.5 mg by mouth once daily {EMPTY_STOMACH} at a creatinine clearance ≥ "
        f"{full} mL/min; {moderate} to < {full}: 0.25 mg once daily (or 0.5 mg every 48 h); "
        f"{severe} to < {moderate}: 0.15 mg once daily (or 0.5 mg every 72 h); < {severe}, "
        "hemodialysis or CAPD: 0.05 mg once daily (or 0.5 mg every 7 days); doses below 0.5 mg "
        "as the 0.05 mg/mL oral solution"
    )


@dataclass(frozen=True)
class Antiviral:
    evidence: tuple[str, ...]
    text: str
    proposals: tuple[Proposal, ...]


def antiviral(inp: PatientInput, why: str) -> Antiviral:
    """The entecavir suggestion: an order with its dose, or text (and what it lacks)."""
    ctx, t = inp.ctx, inp.thresholds
    age = ctx.age
    if age is None or age < t.entecavir_min_age_years:
        shown = f"age {age}" if age is not None else "no birth date on record"
        return Antiviral(
            (
                f"Entecavir order not offered: {shown} (the adult dose is from "
                f"{t.entecavir_min_age_years} years)",
            ),
            f"Under {t.entecavir_min_age_years} years the label doses entecavir by weight (from "
            "2 years and 10 kg; the 0.05 mg/mL oral solution up to 30 kg): choose the antiviral "
            "and dose with pediatric hepatology.",
            (),
        )
    found = clearance(inp)
    if found is None:
        creatinine = ctx.latest_within("serum-creatinine", t.window_renal_days)
        if creatinine is not None:
            lines: tuple[str, ...] = (
                f"Creatinine: {evidence.observation(creatinine)}",
                f"No weight within {t.window_weight_days} days (or no recorded sex) and no eGFR "
                f"within {t.window_renal_days} days: the creatinine clearance cannot be computed",
            )
            proposals: tuple[Proposal, ...] = ()
        else:
            lines = (f"No creatinine or eGFR within {t.window_renal_days} days",)
            proposals = (
                Proposal(
                    "Order serum creatinine (for the entecavir dose)",
                    (CreateOrder("serum-creatinine", why),),
                ),
            )
        return Antiviral(
            lines,
            f"Dose by creatinine clearance (Baraclude label): {_dose_table(inp)}.",
            proposals,
        )
    dose = entecavir_dose(found.value, inp)
    return Antiviral(
        found.lines,
        f"Suggested: {dose.text} (Baraclude label).",
        (
            Proposal(
                dose.label,
                (CreateOrder(dose.orderable, why),),
                recommended=True,
            ),
        ),
    )


def check_reactivation(inp: PatientInput) -> Finding | None:
    therapy = anti_cd20(inp)
    if therapy is None:
        return None
    markers = _markers(inp)
    names = dict(MARKERS)
    lines = [f"{names[c]} positive: {evidence.observation(m)}" for c, m in markers.items()]
    lines += [
        f"Chronic hepatitis B: {evidence.condition(c, m)}"
        for c, m in inp.ctx.conditions_in(inp.kb.valueset("chronic-hepatitis-b"), active_only=True)
    ]
    if not lines:
        return None
    if inp.ctx.medications_in(inp.kb.valueset("hbv-antivirals")):
        return None
    why = "HBV reactivation prophylaxis during B-cell-depleting therapy (AGA 2015)"
    passive = passive_anti_hbc(inp, markers)
    drug = antiviral(inp, why)
    last = (
        f"the latest anti-CD20 record is dated {therapy.latest}"
        if therapy.latest
        else "anti-CD20 therapy is current"
    )
    recommendation = (
        "B-cell-depleting agents carry a high risk of HBV reactivation in HBsAg-positive and "
        "in HBsAg-negative/anti-HBc-positive patients. Start antiviral prophylaxis (entecavir "
        f"or tenofovir rather than lamivudine). {drug.text} Test for HIV before starting "
        "entecavir. Continue it at least 12 months after the last anti-CD20 dose "
        f"({last}). Check HBV DNA and ALT every 1-3 months (monthly preferred) during therapy "
        "and for 12 months after the antiviral stops."
    )
    if passive:
        recommendation += " " + PASSIVE[0].upper() + PASSIVE[1:]
    proposals = (
        *drug.proposals,
        Proposal("Order HBV DNA (viral load)", (CreateOrder("hbv-dna", why),)),
    )
    return Finding(
        topic=REACTIVATION,
        indicator="warning",
        summary="Hepatitis B reactivation risk on anti-CD20 therapy and no antiviral prophylaxis",
        evidence=(
            *therapy.lines,
            *lines,
            *passive,
            "No current entecavir or tenofovir",
            *drug.evidence,
        ),
        recommendation=recommendation,
        proposals=proposals,
        notes=(
            "HBV DNA and ALT every 1-3 months during prophylaxis and for 12 months after it "
            f"stops: {NOT_CHECKED}.",
            *((PASSIVE_SOURCE,) if passive else ()),
        ),
    )


def check_screening(inp: PatientInput) -> Finding | None:
    therapy = anti_cd20(inp)
    if therapy is None or check_reactivation(inp) is not None:
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
        evidence=(*therapy.lines, *(f"No {name} result on file" for _, name in missing)),
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
    observations=(*(concept for concept, _ in MARKERS), *RENAL, "body-weight"),
    thresholds=(
        "anti_cd20_lookback_days",
        "hbv_passive_anti_hbc_days",
        "entecavir_min_age_years",
        "entecavir_crcl_full_dose",
        "entecavir_crcl_moderate",
        "entecavir_crcl_severe",
        "cockcroft_gault_age_base",
        "cockcroft_gault_divisor",
        "cockcroft_gault_female_factor",
        "window_renal_days",
        *WEIGHT_THRESHOLDS,
    ),
)

RULES = (
    PatientRule(
        topic=REACTIVATION,
        hooks=PATIENT_VIEW,
        checks="hepatitis B reactivation on anti-CD20 therapy",
        fires_when=(
            "anti-CD20 therapy (rituximab, ocrelizumab, ofatumumab, obinutuzumab) current or "
            "given in the last 12 months, with HBsAg or anti-HBc positive, or chronic hepatitis "
            "B, and no current entecavir or tenofovir (an anti-HBc drawn on or within 6 months "
            "of immune globulin, HBsAg negative: the card adds that it may be passively acquired)"
        ),
        indicator="`warning`",
        suggests=(
            "entecavir (ordered by text: no confirmed RxNorm code) 0.5 mg by mouth once daily "
            "from 16 years at a creatinine clearance (Cockcroft-Gault, else eGFR) >= 50 mL/min, "
            "the label's reduced dose below; text only under 16 years or without a usable "
            "renal result (then serum creatinine); HBV DNA"
        ),
        reads=READS,
        check=check_reactivation,
    ),
    PatientRule(
        topic=SCREENING,
        hooks=PATIENT_VIEW,
        checks="hepatitis B screening on anti-CD20 therapy",
        fires_when=(
            "anti-CD20 therapy current or given in the last 12 months and no HBsAg or no "
            "anti-HBc result on file (not shown when `hbv-reactivation` fires)"
        ),
        indicator="`info`",
        suggests="the missing tests (LOINC 5196-1, 16933-4)",
        reads=READS,
        check=check_screening,
    ),
)
