"""thrombosis-risk: any risk factor of the class boxed warning (reference §3a; contract §3, §7.3).

Advanced age; history of venous or arterial thrombosis (any clinical status: a resolved DVT is
still a history); hypercoagulable conditions (any status: mostly lifelong); active immobilization,
central venous catheter and hyperviscosity (or triglycerides >= threshold); current estrogens, drugs
with their own boxed thrombosis warning and other listed prothrombotic drugs; pregnancy (dated
within 42 weeks, no later delivery, postpartum or not-pregnant record) and the postpartum period
(a delivery or postpartum record within 6 weeks); cardiovascular risk factors. Applies to IV and SC.

The tier (``boxed_tier``): `warning` with a high-severity factor (prior thrombosis within the
look-back, hypercoagulable condition, hyperviscosity, immobilisation, central line, estrogen or a
drug with its own boxed thrombosis warning, pregnancy or postpartum, a high-dose course), on a
first infusion, or with a new factor; else `info` (a maintenance order with long-standing
cardiovascular factors).
"""

from __future__ import annotations

from datetime import date

from hooks import evidence
from hooks.body_weight import WEIGHT_THRESHOLDS
from hooks.context.read import within_days
from hooks.findings import Finding
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.boxed_tier import TIER_THRESHOLDS, Factor, birthday, high_dose, tier
from hooks.rules.common import (
    OBESITY_READS,
    RATE_THRESHOLDS,
    VOLUME_OBSERVATIONS,
    VOLUME_THRESHOLDS,
    VOLUME_VALUESETS,
    current_smoking,
    hydration,
    minimum_rate,
    obesity,
    run_start,
)
from hooks.rules.comparisons import TRIGLYCERIDES_HIGH
from hooks.rules.ig_therapy import COURSE_KNOWLEDGE, THERAPY_PREFETCH
from hooks.text import record

TOPIC = "thrombosis-risk"
PRIOR_THROMBOSIS = ("venous-thromboembolism", "arterial-thrombosis")
HYPERCOAGULABLE = "hypercoagulable-conditions"
# active conditions, each high-severity, with the reason said on the card
ACTIVE = {
    "immobilization": "immobilisation",
    "central-venous-catheter": "central venous catheter",
    "hyperviscosity-conditions": "hyperviscosity",
}
CARDIOVASCULAR = (
    "hypertension",
    "diabetes",
    "hyperlipidemia",
    "coronary-artery-disease",
    "heart-failure",
    "obesity",
)
# current drugs: value set -> why it is high-severity (None: an ordinary factor)
MEDICATIONS = {
    "estrogen-containing-medications": "estrogen",
    "boxed-thrombosis-medications": "a drug with its own boxed thrombosis warning",
    "prothrombotic-medications": None,
}
# a pregnancy record; the records that end it (the postpartum period counts of itself)
PREGNANCY = ("pregnancy", "not-pregnant", "delivery", "postpartum")


def _prior_thrombosis(inp: OrderInput) -> list[Factor]:
    """High-severity within the look-back (0: any time; undated: counts), else ordinary."""
    lookback, today = inp.thresholds.thrombosis_lookback_days, inp.ctx.today
    found = []
    for name in PRIOR_THROMBOSIS:
        for c, m in inp.ctx.conditions_in(inp.kb.valueset(name), active_only=False):
            recent = lookback == 0 or c.date is None or within_days(today, c.date, lookback)
            why = "prior thrombosis" + ("" if lookback == 0 else f" within {lookback} days")
            found.append(
                Factor(record(c.label), evidence.condition(c, m), why if recent else None, c.date)
            )
    return found


def _dated_records(inp: OrderInput, name: str, *, active_only: bool) -> list[tuple[str, date]]:
    """(evidence line, date) of every dated Condition in value set ``name``, and of the latest
    pregnancy-status Observation when its answer is in it (LA15173-0 Pregnant, LA26683-5 Not
    pregnant)."""
    ctx, concept_set = inp.ctx, inp.kb.valueset(name)
    found = [
        (evidence.condition(c, m), c.date)
        for c, m in ctx.conditions_in(concept_set, active_only=active_only)
        if c.date
    ]
    status = ctx.latest("pregnancy-status")
    if status is not None and status.date:
        matched = concept_set.match(status.value_codes, (status.original,))
        if matched:
            found.append((f"{evidence.observation(status)} ({matched.describe()})", status.date))
    return found


def pregnancy_factors(inp: OrderInput) -> list[Factor]:
    """Pregnancy and the postpartum period (contract §8 "Thrombosis").

    A pregnancy record (an active Condition, or the latest pregnancy-status answer) counts when
    dated within ``pregnancy_days`` (42 weeks) and no delivery, postpartum or not-pregnant record
    is dated after it; an undated one cannot be placed in the 42 weeks and does not count. A
    delivery or postpartum record dated within ``postpartum_days`` (6 weeks) is the postpartum
    period, which counts. Delivery and postpartum are matched by text: the reference gives no
    codes for them.
    """
    ctx, limits = inp.ctx, inp.thresholds
    births = [
        record
        for name in ("delivery", "postpartum")
        for record in _dated_records(inp, name, active_only=False)
    ]
    ended = [d for _, d in births + _dated_records(inp, "not-pregnant", active_only=False)]
    pregnant = [
        (line, since)
        for line, since in _dated_records(inp, "pregnancy", active_only=True)
        if within_days(ctx.today, since, limits.pregnancy_days)
        and not any(end > since for end in ended)
    ]
    postpartum = [
        (line, since)
        for line, since in births
        if within_days(ctx.today, since, limits.postpartum_days)
    ]
    weeks = limits.postpartum_days // 7
    found = []
    # one pregnancy and one postpartum period, however many records say so: the earliest
    # record is when it began (the tier's "new factor")
    if pregnant:
        line, since = min(pregnant, key=lambda item: item[1])
        found.append(Factor("pregnancy", f"Pregnancy: {line}", "pregnancy", since))
    if postpartum:
        line, since = min(postpartum, key=lambda item: item[1])
        name = f"postpartum (within {weeks} weeks)"
        found.append(
            Factor(name, f"Postpartum (within {weeks} weeks): {line}", "postpartum", since)
        )
    return found


def risk_factors(inp: OrderInput) -> list[Factor]:
    """Every risk factor found, with its severity and the date it began. The patient's, not the
    order's: found once per call, however many orders ask (the rate rule asks too)."""
    owners = (inp.kb, inp.thresholds)
    return list(inp.ctx.derived_with("thrombosis.risk_factors", owners, lambda: _risk_factors(inp)))


def _risk_factors(inp: OrderInput) -> list[Factor]:
    ctx, kb, limits = inp.ctx, inp.kb, inp.thresholds
    found: list[Factor] = []
    born = ctx.patient.birth_date
    if ctx.age is not None and born is not None and ctx.age >= limits.thrombosis_age:
        found.append(
            Factor(
                f"age {ctx.age}",
                f"Age ≥ {limits.thrombosis_age}: {evidence.age(ctx)}",
                since=birthday(born, limits.thrombosis_age),
            )
        )
    found += _prior_thrombosis(inp)
    found += [
        Factor(record(c.label), evidence.condition(c, m), "hypercoagulable condition", c.date)
        for c, m in ctx.conditions_in(kb.valueset(HYPERCOAGULABLE), active_only=False)
    ]
    for name, why in ACTIVE.items():
        found += [
            Factor(record(c.label), evidence.condition(c, m), why, c.date)
            for c, m in ctx.conditions_in(kb.valueset(name), active_only=True)
        ]
    triglycerides, limit = ctx.latest("triglycerides"), limits.triglycerides_mg_dl
    if triglycerides and TRIGLYCERIDES_HIGH.holds(triglycerides, limits):  # ">500" is left open
        found.append(
            Factor(
                "very high triglycerides",
                f"Hyperviscosity: {evidence.observation(triglycerides)} (≥ {limit:g} mg/dL)",
                "hyperviscosity",
                run_start(
                    ctx.values("triglycerides"), lambda v: TRIGLYCERIDES_HIGH.holds(v, limits)
                ),
            )
        )
    for name, medication_why in MEDICATIONS.items():
        concept_set = kb.valueset(name)
        since = ctx.first_prescribed(concept_set)
        found += [
            Factor(record(m.label), evidence.medication(m, how), medication_why, since)
            for m, how in ctx.medications_in(concept_set)
        ]
    found += pregnancy_factors(inp)
    for name in CARDIOVASCULAR:
        found += [
            Factor(
                record(c.label),
                f"Cardiovascular risk factor: {evidence.condition(c, m)}",
                None,
                c.date,
            )
            for c, m in ctx.conditions_in(kb.valueset(name), active_only=True)
        ]
    found += [
        Factor("current smoking", f"Cardiovascular risk factor (current smoking): {line}", None, d)
        for line, d in current_smoking(inp)
    ]
    found += [
        Factor("obesity", f"Cardiovascular risk factor (obesity): {line}", None, d)
        for line, d in obesity(inp)
    ]
    return found


def check(inp: OrderInput) -> Finding | None:
    factors = risk_factors(inp)
    if not factors:
        return None
    dose = high_dose(inp)
    if dose is not None:
        factors.append(dose)
    graded = tier(inp, factors)
    names = ", ".join(dict.fromkeys(f.name for f in factors))
    fluids = hydration(
        inp, "Thrombosis risk (immune globulin boxed warning): hydrate before the infusion"
    )
    return Finding(
        topic=TOPIC,
        indicator=graded.indicator,
        summary=f"Thrombosis risk with {inp.order.product_name} (boxed warning): {names}",
        evidence=(*graded.evidence, *fluids.lines),
        recommendation=(
            "Give the minimum dose and infusion rate practicable, and monitor for signs and "
            "symptoms of thrombosis. Assess blood viscosity in patients at risk of "
            f"hyperviscosity. {fluids.advice}"
        ),
        proposals=(*fluids.proposals, minimum_rate(inp)),
        notes=("Thrombosis may occur even without known risk factors.",),
        new_factor=graded.new_factor,
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="the thrombosis boxed warning",
    fires_when=(
        "any boxed-warning risk factor: age ≥ 65; history of venous or arterial thrombosis "
        "(any status); hypercoagulable condition; active immobilization, central venous "
        "catheter or hyperviscosity (myeloma, Waldenström, MGUS, cryoglobulinemia; "
        "triglycerides ≥ 1000 mg/dL); current estrogen, a drug with its own boxed thrombosis "
        "warning or another listed prothrombotic drug; pregnancy (within 42 weeks, not "
        "followed by a delivery or not-pregnant record); postpartum (within 6 weeks); "
        "hypertension, diabetes, hyperlipidemia, coronary disease, heart failure, current "
        "smoking, obesity (BMI ≥ 30 or coded)"
    ),
    indicator=(
        "`warning` with a high-severity factor (prior thrombosis, hypercoagulable condition, "
        "hyperviscosity, immobilisation, central line, estrogen or a drug with its own boxed "
        "thrombosis warning, pregnancy or postpartum, a course ≥ 2 g/kg or ≥ 1 g/kg in a "
        "day), on a first infusion (no immune globulin in 90 days) or with a factor newer "
        "than the last immune globulin order; else `info`"
    ),
    suggests=(
        "pre-infusion hydration (MedicationRequest) only from a site protocol and never for a "
        "volume-sensitive patient (the card gives the infusion volume; else it quotes the "
        "label); minimum practicable rate (order update; rate cap 3.3 mg/kg/min where the "
        "label gives one)"
    ),
    reads=Reads(
        prefetch=frozenset(
            {"patient", "conditions", "observations", "medicationRequests", "medicationStatements"}
        )
        | THERAPY_PREFETCH,
        valuesets=(
            *PRIOR_THROMBOSIS,
            HYPERCOAGULABLE,
            *ACTIVE,
            *CARDIOVASCULAR,
            *MEDICATIONS,
            *PREGNANCY,
            "tobacco-use",
            "current-smoker-answers",
            *VOLUME_VALUESETS,
        ),
        observations=(
            "triglycerides",
            "smoking-status",
            "pregnancy-status",
            *OBESITY_READS,
            *VOLUME_OBSERVATIONS,
        ),
        knowledge=COURSE_KNOWLEDGE,
        thresholds=(
            "thrombosis_age",
            "triglycerides_mg_dl",
            "bmi_obese",
            *WEIGHT_THRESHOLDS,
            "thrombosis_lookback_days",
            "pregnancy_days",
            "postpartum_days",
            *TIER_THRESHOLDS,
            *VOLUME_THRESHOLDS,
            *RATE_THRESHOLDS,
        ),
    ),
    check=check,
)
