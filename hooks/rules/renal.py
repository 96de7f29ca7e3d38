"""renal-risk: IV immune globulin and any renal predisposing factor (IGIV boxed warning, §3b).

Renal insufficiency (CKD or AKI coded and active, latest eGFR below or creatinine above the
thresholds, a creatinine rise meeting the KDIGO AKI definition), diabetes, age > 65, volume
depletion, sepsis, paraproteinemia, a current nephrotoxic drug, a current loop diuretic ("loop
diuretic (risk of volume depletion)", an ordinary factor, not a nephrotoxin), or a
sucrose-containing product. Subcutaneous products carry no renal boxed warning.

A nephrotoxic drug counts when it is given IV or IM, or by mouth when it is absorbed (not oral
vancomycin or neomycin), or when its route is unknown; not a topical, ophthalmic, otic or inhaled
form (contract §8). The route is read from ``dosageInstruction.route``, else the dose form of the
medication (Medication.form, or the form an RxNorm drug name holds), else the dosage text.

The tier (``boxed_tier``, contract §7.3): `warning` with a high-severity factor (eGFR < 30, AKI
coded or by a creatinine rise, sepsis, volume depletion, a sucrose product, a high-dose course),
on a first infusion, or with a new factor; else `info`. BUN and creatinine are suggested only when
no result is within the window: 30 days, or 2 days with AKI, sepsis or eGFR < 30 (§7.2).
"""

from __future__ import annotations

from datetime import date

from hooks import evidence
from hooks.context.model import ClinicalContext, MedicationEntry, ObservationEntry
from hooks.context.read import within_days
from hooks.findings import Finding, Proposal
from hooks.knowledge_base import KnowledgeBase, Thresholds
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.boxed_tier import TIER_THRESHOLDS, Factor, birthday, high_dose, tier
from hooks.rules.common import (
    RATE_THRESHOLDS,
    VOLUME_OBSERVATIONS,
    VOLUME_THRESHOLDS,
    VOLUME_VALUESETS,
    companion,
    hydration,
    minimum_rate,
    run_start,
)
from hooks.rules.comparisons import CREATININE_HIGH, EGFR_LOW, EGFR_SEVERE
from hooks.rules.ig_therapy import COURSE_KNOWLEDGE, COURSE_OBSERVATIONS, THERAPY_PREFETCH
from hooks.text import record

TOPIC = "renal-risk"
# value set -> why it is high-severity (None: an ordinary predisposing factor)
AKI, SEPSIS, RISE = "acute kidney injury", "sepsis", "acute kidney injury by a creatinine rise"
CONDITIONS = {
    "chronic-kidney-disease": None,
    "acute-kidney-injury": AKI,
    "diabetes": None,
    "volume-depletion": "volume depletion",
    "sepsis": SEPSIS,
    "paraproteinemia": None,
}
NEPHROTOXIC = "nephrotoxic-medications"
LOOP_DIURETICS = "loop-diuretics"
NOT_ABSORBED_ORALLY = "poorly-absorbed-oral-medications"
# route, dose form or text -> how it is given; the first that says so wins (counting first)
ROUTES = {"systemic-injection-routes": "IV/IM", "oral-routes": "oral", "local-routes": "local"}
MEDICATIONS = (NEPHROTOXIC, LOOP_DIURETICS, NOT_ABSORBED_ORALLY, *ROUTES)
LOOP_DIURETIC = "loop diuretic (risk of volume depletion)"
OBSERVATIONS = ("egfr", "serum-creatinine")
THRESHOLDS = (
    "renal_age",
    "egfr",
    "creatinine_mg_dl",
    "egfr_severe",
    "creatinine_rise_mg_dl",
    "creatinine_rise_days",
    "creatinine_rise_ratio",
    "creatinine_baseline_days",
    "window_renal_days",
)


def creatinine_rise(ctx: ClinicalContext, limits: Thresholds) -> Factor | None:
    """AKI by the KDIGO creatinine criteria: the latest creatinine (within the renal window) at
    least 0.3 mg/dL above a value of the previous 2 days, or at least 1.5 times the lowest of the
    previous 7 days. Results are dated, not timed: 48 hours is read as 2 calendar days."""
    # A value with a comparator ("<0.5") is no number to subtract: the rise is read from exact
    # values only.
    values = [
        v
        for v in ctx.values("serum-creatinine")
        if v.value is not None and v.date and v.comparator is None
    ]
    if not values or not within_days(ctx.today, values[0].date, limits.window_renal_days):
        return None
    latest, earlier = values[0], values[1:]
    latest_day = values[0].date
    assert latest.value is not None and latest_day is not None

    def before(value: ObservationEntry, days: int) -> bool:
        return value.date is not None and 0 <= (latest_day - value.date).days <= days

    for value in earlier:
        assert value.value is not None
        rise = round(latest.value - value.value, 6)
        if before(value, limits.creatinine_rise_days) and rise >= limits.creatinine_rise_mg_dl:
            return Factor(
                "creatinine rise",
                f"Creatinine rise of {evidence.plain_number(rise)} mg/dL "
                f"(≥ {limits.creatinine_rise_mg_dl:g} in {limits.creatinine_rise_days} days): "
                f"{evidence.observation(latest)}, after {evidence.observation(value)}",
                RISE,
                latest.date,
            )
    baseline = [v for v in earlier if before(v, limits.creatinine_baseline_days)]
    lowest = min(baseline, key=lambda v: v.value or 0.0, default=None)
    if lowest is not None and lowest.value:
        ratio = round(latest.value / lowest.value, 6)
        if ratio >= limits.creatinine_rise_ratio:
            return Factor(
                "creatinine rise",
                f"Creatinine {evidence.plain_number(ratio)} times the lowest of the previous "
                f"{limits.creatinine_baseline_days} days (≥ {limits.creatinine_rise_ratio:g}): "
                f"{evidence.observation(latest)}, lowest {evidence.observation(lowest)}",
                RISE,
                latest.date,
            )
    return None


def predisposing_factors(
    ctx: ClinicalContext, kb: KnowledgeBase, limits: Thresholds
) -> list[Factor]:
    """Every renal predisposing factor of the patient, with its severity and when it began."""
    found: list[Factor] = []
    for name, why in CONDITIONS.items():
        found += [
            Factor(record(c.label), evidence.condition(c, m), why, c.date)
            for c, m in ctx.conditions_in(kb.valueset(name), active_only=True)
        ]
    # Compared with their comparators ("<30" is below 60); one a comparator leaves open is not
    # a factor, and the data card names it (comparisons.undecided).
    egfr = ctx.latest("egfr")
    if EGFR_LOW.holds(egfr, limits):
        assert egfr is not None and egfr.value is not None
        severe = EGFR_SEVERE.holds(egfr, limits)
        found.append(
            Factor(
                f"eGFR {egfr.comparator or ''}{egfr.value:.0f}",
                f"Renal insufficiency: {evidence.observation(egfr)} (eGFR < {limits.egfr:g})",
                severe_egfr(limits) if severe else None,
                run_start(ctx.values("egfr"), lambda v: EGFR_LOW.holds(v, limits)),
            )
        )
    creatinine = ctx.latest("serum-creatinine")
    high = limits.creatinine_mg_dl
    if CREATININE_HIGH.holds(creatinine, limits):
        assert creatinine is not None and creatinine.value is not None
        found.append(
            Factor(
                f"creatinine {creatinine.comparator or ''}{creatinine.value:.2f} mg/dL",
                f"Renal insufficiency: {evidence.observation(creatinine)} (> {high:g} mg/dL)",
                since=run_start(
                    ctx.values("serum-creatinine"), lambda v: CREATININE_HIGH.holds(v, limits)
                ),
            )
        )
    rise = creatinine_rise(ctx, limits)
    if rise is not None:
        found.append(rise)
    born = ctx.patient.birth_date
    if ctx.age is not None and born is not None and ctx.age > limits.renal_age:
        found.append(
            Factor(
                f"age {ctx.age}",
                f"Age > {limits.renal_age}: {evidence.age(ctx)}",
                since=birthday(born, limits.renal_age + 1),
            )
        )
    nephrotoxic = kb.valueset(NEPHROTOXIC)
    since = ctx.first_prescribed(nephrotoxic)
    for m, how in ctx.medications_in(nephrotoxic):
        given = nephrotoxic_exposure(m, kb)
        if given is not None:
            line = f"Nephrotoxic drug: {evidence.medication(m, how)}; {given}"
            found.append(Factor(record(m.label), line, None, since))
    loop = kb.valueset(LOOP_DIURETICS)
    since = ctx.first_prescribed(loop)
    found += [
        Factor(
            LOOP_DIURETIC,
            f"Loop diuretic (risk of volume depletion): {evidence.medication(m, how)}",
            None,
            since,
        )
        for m, how in ctx.medications_in(loop)
    ]
    return found


def route_of(m: MedicationEntry, kb: KnowledgeBase) -> tuple[str, str] | None:
    """How a medication is given, and where that was read: its route, else its dose form, else
    its text (card contract §8 "Renal"); None when none of them says."""
    for where, texts in (
        ("route", m.route_texts),
        ("dose form", m.form_texts),
        ("dosage text", m.instruction_texts),
    ):
        for name, route in ROUTES.items():
            codes = m.route_codes if where == "route" else ()
            if kb.valueset(name).match(codes, texts) is not None:
                return route, where
    return None


def nephrotoxic_exposure(m: MedicationEntry, kb: KnowledgeBase) -> str | None:
    """Why a current nephrotoxic drug counts (given IV or IM, by mouth and absorbed, or by an
    unknown route), or None when it does not: a topical, ophthalmic, otic or inhaled form, or
    oral vancomycin or neomycin, which are not absorbed."""
    found = route_of(m, kb)
    if found is None:
        return "route not recorded (counted)"
    route, where = found
    if route == "local":
        return None
    if route == "oral" and kb.valueset(NOT_ABSORBED_ORALLY).match(m.codes, (m.label,)):
        return None
    return f"{route} (from its {where})"


def risk_factors(inp: OrderInput) -> list[Factor]:
    """The patient's predisposing factors, and a sucrose-containing product."""
    found = predisposing_factors(inp.ctx, inp.kb, inp.thresholds)
    product = inp.order.product
    if product is not None and "sucrose" in product.excipients:
        found.append(
            Factor(
                "sucrose-containing product",
                f"{product.brand} contains sucrose: renal failure is more common with "
                "sucrose-containing IGIV",
                "a sucrose-containing product",
            )
        )
    return found


def severe_egfr(limits: Thresholds) -> str:
    return f"eGFR < {limits.egfr_severe:g}"


def lab_window(inp: OrderInput, factors: list[Factor]) -> tuple[int, str]:
    """How recent a creatinine, eGFR or BUN must be (days), and why when it is the short one:
    with AKI, sepsis or a severely reduced eGFR, renal function can change within days."""
    limits = inp.thresholds
    short = {AKI, SEPSIS, RISE, severe_egfr(limits)}
    acute = [f.name for f in factors if f.high in short]
    if acute:
        return limits.window_renal_acute_days, f" ({', '.join(dict.fromkeys(acute))})"
    return limits.window_renal_days, ""


def companion_labs(inp: OrderInput, factors: list[Factor]) -> tuple[list[str], Proposal | None]:
    """BUN and creatinine before the infusion, less those with a result within the window; and
    an evidence line naming each result that made a suggestion unnecessary."""
    ctx = inp.ctx
    window, why_short = lab_window(inp, factors)
    lines: list[str] = []
    wanted: list[str] = []
    renal = [v for c in OBSERVATIONS if (v := ctx.latest_within(c, window))]
    if renal:
        latest = max(renal, key=lambda v: v.date or date.min)
        lines.append(
            f"Renal function on file within {window} days{why_short}, so no creatinine is "
            f"suggested: {evidence.observation(latest)}"
        )
    else:
        wanted.append("serum-creatinine")
    bun = ctx.latest_within("bun", window)
    if bun:
        lines.append(
            f"BUN on file within {window} days{why_short}, so none is suggested: "
            f"{evidence.observation(bun)}"
        )
    else:
        wanted.insert(0, "bun")
    if not wanted:
        return lines, None
    names = {"bun": "BUN", "serum-creatinine": "serum creatinine"}
    label = f"Order {' and '.join(names[w] for w in wanted)} before the infusion"
    what = " and ".join(names[w] for w in wanted)
    why = f"Renal risk (IGIV boxed warning): {what} before the infusion"
    return lines, companion(label, inp, why, *wanted)


def check(inp: OrderInput) -> Finding | None:
    if inp.order.route != "IV":
        return None
    factors = risk_factors(inp)
    if not factors:
        return None
    dose = high_dose(inp)
    if dose is not None:
        factors.append(dose)
    graded = tier(inp, factors)
    lab_lines, labs = companion_labs(inp, factors)
    notes = []
    if inp.order.product is None:
        notes.append("The product was not identified, so its sucrose content could not be checked.")
    names = ", ".join(dict.fromkeys(f.name for f in factors))
    fluids = hydration(inp, "Renal risk (IGIV boxed warning): hydrate before the infusion")
    return Finding(
        topic=TOPIC,
        indicator=graded.indicator,
        summary=f"Renal failure risk with IV {inp.order.product_name} (boxed warning): {names}",
        evidence=(*graded.factors, *lab_lines, *graded.reasons, *fluids.lines),
        recommendation=(
            "Check BUN and serum creatinine before the infusion, give the minimum dose and "
            "infusion rate practicable, and monitor renal function and urine output. "
            f"{fluids.advice}"
        ),
        proposals=(
            *((labs,) if labs else ()),
            *fluids.proposals,
            minimum_rate(inp),
        ),
        notes=tuple(notes),
        new_factor=graded.new_factor,
    )


READS = Reads(
    prefetch=frozenset(
        {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"}
    ),
    valuesets=(*CONDITIONS, *MEDICATIONS),
    observations=OBSERVATIONS,
    thresholds=THRESHOLDS,
)
# The order rule also reads the patient's immune globulin (the tier) and recent BUN (the labs).
ORDER_READS = Reads(
    prefetch=READS.prefetch | THERAPY_PREFETCH,
    valuesets=(*READS.valuesets, *VOLUME_VALUESETS),
    observations=(*OBSERVATIONS, "bun", *COURSE_OBSERVATIONS, *VOLUME_OBSERVATIONS),
    thresholds=(
        *THRESHOLDS,
        *TIER_THRESHOLDS,
        "window_renal_acute_days",
        *VOLUME_THRESHOLDS,
        *RATE_THRESHOLDS,
    ),
    knowledge=COURSE_KNOWLEDGE,
)

RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="the renal boxed warning (IV)",
    fires_when=(
        "IV route and any of: active CKD or AKI, latest eGFR < 60, latest creatinine > 1.3 "
        "mg/dL, a creatinine rise ≥ 0.3 mg/dL in 2 days or ≥ 1.5 times the lowest of 7 days, "
        "active diabetes, age > 65, volume depletion, sepsis, paraproteinemia, a current "
        "nephrotoxic drug given IV, IM or by mouth when absorbed, or by an unknown route (not "
        "oral vancomycin or neomycin; not topical, ophthalmic, otic or inhaled forms), a "
        "current loop diuretic (risk of volume depletion), a sucrose-containing product"
    ),
    indicator=(
        "`warning` with a high-severity factor (eGFR < 30, AKI coded or by a creatinine rise, "
        "sepsis, volume depletion, a sucrose product, a course ≥ 2 g/kg or ≥ 1 g/kg in a day), "
        "on a first infusion (no immune globulin in 90 days) or with a factor newer than the "
        "last immune globulin order; else `info`"
    ),
    suggests=(
        "BUN and creatinine (ServiceRequests, LOINC 3094-0, 2160-0) unless on file within 30 "
        "days (2 days with AKI, sepsis or eGFR < 30); hydration only from a site protocol and "
        "never for a volume-sensitive patient; minimum rate"
    ),
    reads=ORDER_READS,
    check=check,
)
