"""Tiers of the boxed-warning and appropriateness findings, and companion labs only when needed
(contract §7.2, §7.3), checked on the engine's findings.

The patient is 55 (no age factor) unless a test says otherwise; "maintenance" means an active
immune globulin order authored four weeks ago; the evaluation date is contexts.TODAY.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from contexts import KB, SETTINGS, THRESHOLDS, TODAY, context_of

from hooks.engine import Settings, evaluate
from hooks.findings import CreateOrder, Finding

SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1971-03-02", "gender": "female"}
LAST_ORDER = TODAY - timedelta(days=28)


def day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def condition(
    ident: str,
    code: str,
    text: str,
    *,
    system: str = SCT,
    onset: str | None = "2015-01-01",
    status: str = "active",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": ident,
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": status,
                }
            ]
        },
        "code": {"coding": [{"system": system, "code": code, "display": text}], "text": text},
    }
    if onset:
        resource["onsetDateTime"] = onset
    return resource


def lab(ident: str, code: str, value: float, unit: str, days_ago: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": ident,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": day(days_ago),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org"},
    }


def medication(
    ident: str, text: str, *, status: str = "active", authored: str = "2020-01-01"
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": ident,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": authored,
        "medicationCodeableConcept": {"text": text},
    }


def privigen(
    ident: str = "new-order",
    *,
    status: str = "draft",
    authored: str | None = None,
    dose_g_per_kg: float = 0.5,
    daily_count: int | None = None,
    reason: tuple[str, str, str] | None = (SCT, "23238000", "Common variable agammaglobulinemia"),
) -> dict[str, Any]:
    """A Privigen IV order: every 4 weeks, or daily for ``daily_count`` days."""
    repeat: dict[str, Any] = (
        {"frequency": 1, "period": 1, "periodUnit": "d", "count": daily_count}
        if daily_count
        else {"frequency": 1, "period": 4, "periodUnit": "wk"}
    )
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": ident,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": authored or TODAY.isoformat(),
        "medicationCodeableConcept": {"text": "Privigen 10% (immune globulin intravenous)"},
        "dosageInstruction": [
            {
                "route": {"coding": [{"system": SCT, "code": "47625008"}]},
                "timing": {"repeat": repeat},
                "doseAndRate": [{"doseQuantity": {"value": dose_g_per_kg, "unit": "g/kg"}}],
            }
        ],
    }
    if reason:
        system, code, text = reason
        resource["reasonCode"] = [{"coding": [{"system": system, "code": code}], "text": text}]
    return resource


HYPERTENSION = condition("htn", "59621000", "Essential hypertension")
DIABETES = condition("dm", "44054006", "Type 2 diabetes mellitus")
WEIGHT = lab("weight", "29463-7", 70, "kg", 5)
CREATININE = lab("creatinine", "2160-0", 0.9, "mg/dL", 5)
BUN = lab("bun", "3094-0", 14, "mg/dL", 5)
STABLE = [HYPERTENSION, DIABETES, WEIGHT, CREATININE, BUN]
MAINTENANCE = privigen("last-order", status="active", authored=LAST_ORDER.isoformat())


def findings(
    record: list[dict[str, Any]],
    order: dict[str, Any] | None = None,
    settings: Settings = SETTINGS,
) -> dict[str, Finding]:
    ctx = context_of(record, [order or privigen()], patient=PATIENT)
    return {f.topic: f for f in evaluate(ctx, KB, settings)}


def lab_orders(found: Finding) -> list[str]:
    return [
        action.orderable
        for proposal in found.proposals
        for action in proposal.actions
        if isinstance(action, CreateOrder) and action.orderable != "pre-infusion-hydration"
    ]


# --- boxed warning: thrombosis and renal ---------------------------------------------------


def test_a_stable_maintenance_order_gets_info_and_no_guidance() -> None:
    found = findings([*STABLE, MAINTENANCE])
    assert found["thrombosis-risk"].indicator == "info"
    assert found["renal-risk"].indicator == "info"
    assert not found["thrombosis-risk"].new_factor
    assert "indication-guidance" not in found
    text = "\n".join(found["thrombosis-risk"].evidence)
    assert "not a first infusion" in text and "MedicationRequest/last-order" in text
    assert "Info, not warning" in text


def test_the_same_patient_s_first_infusion_is_a_warning() -> None:
    found = findings(STABLE)
    for topic in ("thrombosis-risk", "renal-risk"):
        assert found[topic].indicator == "warning", topic
        assert not found[topic].new_factor
        assert "first infusion" in found[topic].evidence[-1]


def test_an_order_given_more_than_90_days_ago_leaves_a_first_infusion() -> None:
    old = privigen("old-order", status="completed", authored=day(120))
    assert findings([*STABLE, old])["thrombosis-risk"].indicator == "warning"
    recent = privigen("recent-order", status="completed", authored=day(60))
    assert findings([*STABLE, recent])["thrombosis-risk"].indicator == "info"


def test_a_condition_newer_than_the_last_order_raises_a_new_factor_warning() -> None:
    hyperlipidemia = condition("hld", "55822004", "Hyperlipidemia", onset=day(7))
    found = findings([*STABLE, MAINTENANCE, hyperlipidemia])["thrombosis-risk"]
    assert found.indicator == "warning" and found.new_factor
    assert any("Hyperlipidemia" in line and "[new:" in line for line in found.evidence)


def test_an_undated_factor_is_not_new() -> None:
    hyperlipidemia = condition("hld", "55822004", "Hyperlipidemia", onset=None)
    found = findings([*STABLE, MAINTENANCE, hyperlipidemia])["thrombosis-risk"]
    assert found.indicator == "info" and not found.new_factor


def test_reaching_65_since_the_last_order_is_new() -> None:
    patient = {**PATIENT, "birthDate": (TODAY - timedelta(days=10)).replace(year=1961).isoformat()}
    ctx = context_of([*STABLE, MAINTENANCE], [privigen()], patient=patient)
    found = {f.topic: f for f in evaluate(ctx, KB, SETTINGS)}["thrombosis-risk"]
    assert found.indicator == "warning" and found.new_factor


def test_a_high_severity_factor_is_a_warning_on_a_maintenance_order() -> None:
    dvt = condition("dvt", "128053003", "Deep venous thrombosis", onset="2019-04-01")
    dvt["clinicalStatus"]["coding"][0]["code"] = "resolved"
    found = findings([*STABLE, MAINTENANCE, dvt])["thrombosis-risk"]
    assert found.indicator == "warning" and not found.new_factor
    assert any(
        "Deep venous thrombosis" in line and "high-severity" in line for line in found.evidence
    )


def test_the_thrombosis_look_back_is_configurable() -> None:
    dvt = condition("dvt", "128053003", "Deep venous thrombosis", onset="2019-04-01")
    one_year = Settings(SETTINGS.rules, replace(THRESHOLDS, thrombosis_lookback_days=365))
    assert (
        findings([*STABLE, MAINTENANCE, dvt], settings=one_year)["thrombosis-risk"].indicator
        == "info"
    )
    recent = condition("dvt", "128053003", "Deep venous thrombosis", onset=day(200))
    assert (
        findings([*STABLE, MAINTENANCE, recent], settings=one_year)["thrombosis-risk"].indicator
        == "warning"
    )


def test_drugs_with_their_own_boxed_thrombosis_warning_are_high_severity() -> None:
    lenalidomide = medication("len", "lenalidomide 10 MG Oral Capsule")
    found = findings([*STABLE, MAINTENANCE, lenalidomide])["thrombosis-risk"]
    assert found.indicator == "warning"
    tranexamic = medication("txa", "tranexamic acid 650 MG Oral Tablet")
    found = findings([*STABLE, MAINTENANCE, tranexamic])["thrombosis-risk"]
    assert found.indicator == "info", "an antifibrinolytic is an ordinary factor"


def test_a_renewed_prescription_is_not_new_when_the_drug_predates_the_last_order() -> None:
    ibuprofen = medication("nsaid-now", "ibuprofen 400 MG Oral Tablet", authored=day(3))
    earlier = medication(
        "nsaid-before", "ibuprofen 400 MG Oral Tablet", status="completed", authored="2025-01-10"
    )
    assert findings([*STABLE, MAINTENANCE, ibuprofen, earlier])["renal-risk"].indicator == "info"
    found = findings([*STABLE, MAINTENANCE, ibuprofen])["renal-risk"]
    assert found.indicator == "warning" and found.new_factor


def test_pregnancy_within_42_weeks_is_high_severity_unless_a_not_pregnant_record_follows() -> None:
    pregnant = condition("preg", "77386006", "Patient currently pregnant", onset=day(100))
    assert findings([*STABLE, MAINTENANCE, pregnant])["thrombosis-risk"].indicator == "warning"
    ended = condition("notpreg", "60001007", "Not pregnant", onset=day(10))
    assert findings([*STABLE, MAINTENANCE, pregnant, ended])["thrombosis-risk"].indicator == "info"
    long_ago = condition("preg", "77386006", "Patient currently pregnant", onset=day(400))
    assert findings([*STABLE, MAINTENANCE, long_ago])["thrombosis-risk"].indicator == "info"


def test_a_high_dose_course_with_any_factor_is_a_warning() -> None:
    course = privigen(dose_g_per_kg=0.4, daily_count=5)
    found = findings([*STABLE, MAINTENANCE], course)
    assert found["thrombosis-risk"].indicator == "warning"
    assert any("High-dose course: 2 g/kg" in line for line in found["thrombosis-risk"].evidence)
    day_dose = privigen(dose_g_per_kg=1.0, daily_count=1)
    assert findings([*STABLE, MAINTENANCE], day_dose)["renal-risk"].indicator == "warning"


def test_severe_renal_factors_are_warnings_on_a_maintenance_order() -> None:
    egfr = lab("egfr", "98979-8", 25, "mL/min/{1.73_m2}", 3)
    assert findings([*STABLE, MAINTENANCE, egfr])["renal-risk"].indicator == "warning"
    sepsis = condition("sepsis", "91302008", "Sepsis", onset="2015-01-01")
    assert findings([*STABLE, MAINTENANCE, sepsis])["renal-risk"].indicator == "warning"


def test_a_creatinine_rise_is_acute_kidney_injury() -> None:
    before = lab("creat-before", "2160-0", 0.9, "mg/dL", 3)
    after = lab("creat-after", "2160-0", 1.2, "mg/dL", 1)
    found = findings([HYPERTENSION, WEIGHT, BUN, MAINTENANCE, before, after])["renal-risk"]
    assert found.indicator == "warning"
    assert any("Creatinine rise of 0.3 mg/dL" in line for line in found.evidence)
    week = lab("creat-week", "2160-0", 0.6, "mg/dL", 6)
    later = lab("creat-later", "2160-0", 0.95, "mg/dL", 1)
    found = findings([DIABETES, WEIGHT, BUN, MAINTENANCE, week, later])["renal-risk"]
    assert any("times the lowest" in line for line in found.evidence)
    steady = lab("creat-steady", "2160-0", 0.8, "mg/dL", 6)
    found = findings([DIABETES, WEIGHT, BUN, MAINTENANCE, steady, later])["renal-risk"]
    assert found.indicator == "info", "0.15 mg/dL over 5 days is no rise"


def test_an_egfr_below_60_is_new_only_when_it_was_60_or_more_at_the_last_order() -> None:
    was_normal = lab("egfr-before", "98979-8", 65, "mL/min/{1.73_m2}", 40)
    now_low = lab("egfr-now", "98979-8", 55, "mL/min/{1.73_m2}", 3)
    found = findings([HYPERTENSION, WEIGHT, BUN, MAINTENANCE, was_normal, now_low])["renal-risk"]
    assert found.indicator == "warning" and found.new_factor
    was_low = lab("egfr-before", "98979-8", 52, "mL/min/{1.73_m2}", 40)
    found = findings([HYPERTENSION, WEIGHT, BUN, MAINTENANCE, was_low, now_low])["renal-risk"]
    assert found.indicator == "info" and not found.new_factor


# --- appropriateness ----------------------------------------------------------------------


ANTI_GBM = (SCT, "236506009", "Goodpasture's disease")
CDIFF = (SCT, "186431008", "Clostridioides difficile infection")
MG = (SCT, "91637004", "Myasthenia gravis")


def test_anti_gbm_disease_is_an_appropriateness_warning_even_on_maintenance() -> None:
    for record in ([WEIGHT, CREATININE, BUN], [WEIGHT, CREATININE, BUN, MAINTENANCE]):
        found = findings(record, privigen(reason=ANTI_GBM))["indication-guidance"]
        assert found.indicator == "warning"
        assert "not part of KDIGO 2021" in found.summary


def test_c_difficile_is_a_warning_unless_hypogammaglobulinemia() -> None:
    found = findings([WEIGHT], privigen(reason=CDIFF))["indication-guidance"]
    assert found.indicator == "warning" and "IDSA/SHEA" in found.summary
    hypogamma = condition("hypo", "D80.1", "Nonfamilial hypogammaglobulinemia", system=ICD)
    found = findings([WEIGHT, hypogamma], privigen(reason=CDIFF))["indication-guidance"]
    assert found.indicator == "info"
    low_igg = lab("igg", "2465-3", 300, "mg/dL", 20)
    assert (
        findings([WEIGHT, low_igg], privigen(reason=CDIFF))["indication-guidance"].indicator
        == "info"
    )
    assert "indication-guidance" not in findings(
        [WEIGHT, hypogamma, MAINTENANCE], privigen(reason=CDIFF)
    ), "with hypogammaglobulinemia a maintenance order gets nothing"


def test_anti_mag_neuropathy_is_a_warning() -> None:
    anti_mag = condition("mag", "000", "Anti-MAG neuropathy", system="urn:local")
    found = findings([WEIGHT, anti_mag], privigen(reason=None))["indication-guidance"]
    assert found.indicator == "warning" and "rituximab" in found.summary


def test_other_guidance_is_info_on_a_first_order_and_nothing_on_maintenance() -> None:
    assert findings([WEIGHT], privigen(reason=MG))["indication-guidance"].indicator == "info"
    assert "indication-guidance" not in findings([WEIGHT, MAINTENANCE], privigen(reason=MG))


def test_without_a_reason_only_the_patient_s_only_indication_is_followed() -> None:
    gbm = condition("gbm", "236506009", "Goodpasture's disease")
    myasthenia = condition("mg", "91637004", "Myasthenia gravis")
    alone = findings([WEIGHT, gbm], privigen(reason=None))
    assert alone["indication-guidance"].indicator == "warning"
    both = findings([WEIGHT, gbm, myasthenia], privigen(reason=None))
    assert "indication-guidance" not in both, "which indication the order is for is unknown"


# --- companion labs ---------------------------------------------------------------------


def test_renal_labs_are_not_suggested_with_recent_results() -> None:
    found = findings(STABLE)["renal-risk"]
    assert lab_orders(found) == []
    assert any("Observation/creatinine" in line for line in found.evidence)
    assert any("Observation/bun" in line for line in found.evidence)


def test_renal_labs_are_suggested_without_recent_results() -> None:
    old = lab("creatinine", "2160-0", 0.9, "mg/dL", 45)
    assert lab_orders(findings([DIABETES, WEIGHT, old])["renal-risk"]) == [
        "bun",
        "serum-creatinine",
    ]
    assert lab_orders(findings([DIABETES, WEIGHT, CREATININE])["renal-risk"]) == ["bun"]


def test_with_acute_kidney_injury_recent_means_two_days() -> None:
    aki = condition("aki", "14669001", "Acute renal failure syndrome", onset=day(5))
    found = findings([aki, WEIGHT, CREATININE, BUN])["renal-risk"]
    assert lab_orders(found) == ["bun", "serum-creatinine"]
    fresh = [lab("c", "2160-0", 1.1, "mg/dL", 1), lab("b", "3094-0", 20, "mg/dL", 1)]
    assert lab_orders(findings([aki, WEIGHT, *fresh])["renal-risk"]) == []


def test_missing_data_does_not_suggest_a_bun_on_file() -> None:
    found = findings([WEIGHT, BUN])["missing-data"]
    assert lab_orders(found) == ["serum-creatinine"]
    assert lab_orders(findings([WEIGHT])["missing-data"]) == ["bun", "serum-creatinine"]


def test_hemolysis_always_suggests_the_post_infusion_hemoglobin() -> None:
    group_a = {
        "resourceType": "Observation",
        "id": "abo",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": LOINC, "code": "883-9"}]},
        "effectiveDateTime": "2020-01-01",
        "valueCodeableConcept": {"text": "Group A"},
    }
    course = privigen(dose_g_per_kg=0.4, daily_count=5)
    found = findings([WEIGHT, group_a], course)["hemolysis-risk"]
    whys = [a.why for p in found.proposals for a in p.actions if isinstance(a, CreateOrder)]
    assert len(whys) == 2 and "baseline" in whys[0] and "36-96 hours after" in whys[1]
    hemoglobin = lab("hb", "718-7", 12.5, "g/dL", 2)
    found = findings([WEIGHT, group_a, hemoglobin], course)["hemolysis-risk"]
    whys = [a.why for p in found.proposals for a in p.actions if isinstance(a, CreateOrder)]
    assert len(whys) == 1 and "36-96 hours after the last infusion" in whys[0]
    assert any("Observation/hb" in line for line in found.evidence)
    stale = lab("hb", "718-7", 12.5, "g/dL", 30)
    found = findings([WEIGHT, group_a, stale], course)["hemolysis-risk"]
    assert len(found.proposals) == 2


def test_the_latest_value_and_the_kept_history_agree() -> None:
    """The history the tier reads starts with the value every other rule reads."""
    values = [lab(f"c{i}", "2160-0", 0.8 + i / 10, "mg/dL", 10 - i) for i in range(4)]
    ctx = context_of(values, [privigen()], patient=PATIENT)
    history = ctx.values("serum-creatinine")
    assert [v.reference for v in history] == [f"Observation/c{i}" for i in (3, 2, 1, 0)]
    assert history[0] == ctx.latest("serum-creatinine")
    assert isinstance(history[0].date, date)
