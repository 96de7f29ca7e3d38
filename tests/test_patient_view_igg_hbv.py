"""Patient-view corrections (contract §8): the IgG trough on replacement therapy, and hepatitis B
with anti-CD20 therapy (the 12-month window, passive anti-HBc, the entecavir dose).

Every figure is worked out by hand here, not by calling the code.
"""

from __future__ import annotations

from typing import Any

import pytest
from builders import CREATININE, EGFR, WEIGHT, ig_order, observation, patient
from conftest import FHIR_BASE, FakeFhirServer, fired
from contexts import KB, THRESHOLDS, TODAY, context_of
from flask.testing import FlaskClient
from test_patient_view import URL, full_view_prefetch, resources_of, view_request

from hooks.findings import CreateOrder, Finding
from hooks.resources import created
from hooks.rules import hbv, monitoring
from hooks.rules.base import PatientInput

PID = "p1"
IGG = "2465-3"
PI_REASON = {"coding": [{"system": "http://snomed.info/sct", "code": "23238000"}]}


def run(check: Any, resources: list[dict[str, Any]], who: dict[str, Any]) -> Finding | None:
    ctx = context_of(resources, hook="patient-view", patient=who)
    found: Finding | None = check(PatientInput(ctx, KB, THRESHOLDS))
    return found


# -- IgG trough on replacement therapy ------------------------------------------------------


def privigen(authored: str, *, status: str = "active", reason: bool = True) -> dict[str, Any]:
    order = ig_order(
        PID,
        f"ivig-{authored}",
        "Privigen",
        dose=0.4,
        repeat={"frequency": 1, "period": 4, "periodUnit": "wk"},
        status=status,
        authored=authored,
    )
    if reason:
        order["reasonCode"] = [PI_REASON]
    return order


ADULT = patient(PID, "1986-03-10")


def igg(value: float, when: str, index: int = 1) -> dict[str, Any]:
    return observation(PID, IGG, value, "mg/dL", index, when)


def test_a_low_igg_after_the_first_administration_is_a_warning() -> None:
    found = run(monitoring.check_igg_low, [privigen("2026-01-05"), igg(420, "2026-05-20")], ADULT)
    assert found is not None and found.indicator == "warning"
    assert "420 mg/dL" in found.summary and "500 mg/dL" in found.summary
    assert "troughs are individualised to infections" in found.recommendation
    assert "First administration of the current therapy: 2026-01-05" in found.evidence


def test_a_low_igg_before_the_first_administration_is_a_baseline() -> None:
    resources = [privigen("2026-05-01"), igg(420, "2026-04-25")]
    assert run(monitoring.check_igg_low, resources, ADULT) is None
    # nor is it a trough: started 45 days ago, the first trough is due at 90 days
    assert run(monitoring.check_igg_trough, resources, ADULT) is None


def test_an_igg_drawn_on_the_day_of_the_first_administration_is_a_baseline() -> None:
    # Started 2026-03-17, 90 days before 2026-06-15: the first trough is due; the IgG of that
    # morning (within 90 days) is a baseline, so the trough is still missing.
    resources = [privigen("2026-03-17"), igg(420, "2026-03-17")]
    assert run(monitoring.check_igg_low, resources, ADULT) is None
    due = run(monitoring.check_igg_trough, resources, ADULT)
    assert due is not None and any("a baseline" in line for line in due.evidence)


def test_a_renewed_order_continues_the_therapy_it_follows() -> None:
    # The current order was authored 2026-05-01; the completed one before it was last given
    # 2026-03-01 (60 days earlier, within 90): the therapy began 2026-03-01, so the IgG of
    # 2026-04-10 is a trough, not a baseline.
    earlier = privigen("2026-03-01", status="completed")
    earlier["dosageInstruction"][0]["timing"] = {"event": ["2026-03-01"]}
    resources = [earlier, privigen("2026-05-01"), igg(420, "2026-04-10")]
    found = run(monitoring.check_igg_low, resources, ADULT)
    assert found is not None
    assert "First administration of the current therapy: 2026-03-01" in found.evidence


def test_an_igg_at_the_minimum_is_silent() -> None:
    resources = [privigen("2026-01-05"), igg(500, "2026-05-20")]
    assert run(monitoring.check_igg_low, resources, ADULT) is None


def test_a_low_igg_on_therapy_for_another_indication_is_not_replacement() -> None:
    resources = [privigen("2026-01-05", reason=False), igg(420, "2026-05-20")]
    assert run(monitoring.check_igg_low, resources, ADULT) is None


# -- hepatitis B ----------------------------------------------------------------------------


def rituximab(status: str, authored: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "rtx",
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{PID}"},
        "authoredOn": authored,
        "medicationCodeableConcept": {"text": "Rituximab 10 MG/ML Injectable Solution"},
    }


def serology(loinc: str, answer: str, index: int, when: str = "2026-03-01") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{PID}-s{index}",
        "status": "final",
        "subject": {"reference": f"Patient/{PID}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": when,
        "valueCodeableConcept": {"text": answer},
    }


HBSAG_NEGATIVE = serology("5196-1", "Negative", 1)
ANTI_HBC_POSITIVE = serology("16933-4", "Positive", 2)
MAN_50 = patient(PID, "1976-01-10", "male")  # 50 years old on 2026-06-15


def renal(creatinine: float, weight: float | None = 72) -> list[dict[str, Any]]:
    found = [observation(PID, CREATININE, creatinine, "mg/dL", 10, "2026-06-01")]
    if weight is not None:
        found.append(observation(PID, WEIGHT, weight, "kg", 11, "2026-06-01"))
    return found


def reactivation(resources: list[dict[str, Any]], who: dict[str, Any] = MAN_50) -> Finding | None:
    return run(hbv.check_reactivation, resources, who)


def entecavir_orders(found: Finding) -> list[str]:
    return [
        action.orderable
        for proposal in found.proposals
        for action in proposal.actions
        if isinstance(action, CreateOrder) and action.orderable.startswith("entecavir")
    ]


def test_rituximab_six_months_ago_with_anti_hbc_fires() -> None:
    # completed rituximab authored 2025-12-15: 182 days before 2026-06-15, within 365
    found = reactivation(
        [rituximab("completed", "2025-12-15"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE, *renal(1.5)]
    )
    assert found is not None and found.indicator == "warning"
    assert "passively" not in found.recommendation  # no immune globulin on record


def test_rituximab_fourteen_months_ago_is_silent() -> None:
    # authored 2025-04-10: 431 days before 2026-06-15, beyond 365
    resources = [rituximab("completed", "2025-04-10"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE]
    assert reactivation(resources) is None
    assert run(hbv.check_screening, [rituximab("completed", "2025-04-10")], MAN_50) is None


def test_rituximab_stopped_within_twelve_months_still_asks_for_screening() -> None:
    found = run(hbv.check_screening, [rituximab("stopped", "2026-01-15")], MAN_50)
    assert found is not None and found.topic == "hbv-screening"


def test_anti_hbc_after_immune_globulin_may_be_passive() -> None:
    # one Privigen administration on 2026-01-01, 59 days before the anti-HBc of 2026-03-01
    given = privigen("2026-01-01", status="completed", reason=False)
    given["dosageInstruction"][0]["timing"] = {"event": ["2026-01-01"]}
    found = reactivation(
        [rituximab("completed", "2025-12-15"), given, HBSAG_NEGATIVE, ANTI_HBC_POSITIVE]
    )
    assert found is not None and found.indicator == "warning"
    assert (
        "Anti-HBc may be passively acquired from immune globulin; check HBV DNA and any "
        "earlier anti-HBc." in found.recommendation
    )
    assert any("last given 2026-01-01" in line for line in found.evidence)


def test_immune_globulin_seven_months_before_the_anti_hbc_is_not_passive() -> None:
    # 2025-08-01 to 2026-03-01 is 212 days, beyond 183
    given = privigen("2025-08-01", status="completed", reason=False)
    given["dosageInstruction"][0]["timing"] = {"event": ["2025-08-01"]}
    found = reactivation(
        [rituximab("completed", "2025-12-15"), given, HBSAG_NEGATIVE, ANTI_HBC_POSITIVE]
    )
    assert found is not None and "passively" not in found.recommendation


def test_hbsag_positive_is_never_called_passive() -> None:
    given = privigen("2026-01-01", status="completed", reason=False)
    given["dosageInstruction"][0]["timing"] = {"event": ["2026-01-01"]}
    hbsag_positive = serology("5196-1", "Positive", 1)
    found = reactivation(
        [rituximab("completed", "2025-12-15"), given, hbsag_positive, ANTI_HBC_POSITIVE]
    )
    assert found is not None and "passively" not in found.recommendation


def test_entecavir_full_dose_at_a_clearance_of_60() -> None:
    # Cockcroft-Gault, man of 50, 72 kg, creatinine 1.5 mg/dL:
    # (140 - 50) x 72 = 6480; 72 x 1.5 = 108; 6480 / 108 = 60.0 mL/min (>= 50: 0.5 mg daily)
    found = reactivation(
        [rituximab("active", "2026-05-01"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE, *renal(1.5)]
    )
    assert found is not None
    assert (
        "Creatinine clearance (Cockcroft-Gault): (140 − 50 years) × 72 kg ÷ (72 × 1.5 mg/dL) "
        "= 6480 ÷ 108 = 60.0 mL/min (male, 50 years)"
    ) in found.evidence
    assert entecavir_orders(found) == ["entecavir-0.5mg-daily"]
    assert "entecavir 0.5 mg by mouth once daily on an empty stomach" in found.recommendation
    assert "Test for HIV before starting entecavir" in found.recommendation
    assert "at least 12 months after the last anti-CD20 dose" in found.recommendation
    assert "HBV DNA and ALT every 1-3 months" in found.recommendation


def test_entecavir_reduced_dose_at_a_clearance_of_40() -> None:
    # (140 - 50) x 72 = 6480; 72 x 2.25 = 162; 6480 / 162 = 40.0 mL/min (30 to < 50)
    found = reactivation(
        [rituximab("active", "2026-05-01"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE, *renal(2.25)]
    )
    assert found is not None
    assert any("= 6480 ÷ 162 = 40.0 mL/min" in line for line in found.evidence)
    assert entecavir_orders(found) == ["entecavir-0.25mg-daily"]
    assert "0.25 mg (5 mL of the 0.05 mg/mL oral solution)" in found.recommendation
    assert "or 0.5 mg every 48 hours" in found.recommendation


def test_cockcroft_gault_for_a_woman() -> None:
    # woman of 50, 72 kg, creatinine 1.5: 6480 / 108 = 60; x 0.85 = 51.0 mL/min (>= 50)
    woman = patient(PID, "1976-01-10", "female")
    found = reactivation(
        [rituximab("active", "2026-05-01"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE, *renal(1.5)],
        woman,
    )
    assert found is not None
    assert any("= 6480 ÷ 108 × 0.85 (female) = 51.0 mL/min" in line for line in found.evidence)
    assert entecavir_orders(found) == ["entecavir-0.5mg-daily"]


@pytest.mark.parametrize(
    ("creatinine", "orderable"),
    [
        # 6480 / (72 x 4.5 = 324) = 20.0 mL/min: 10 to < 30
        (4.5, "entecavir-0.15mg-daily"),
        # 6480 / (72 x 10 = 720) = 9.0 mL/min: < 10
        (10.0, "entecavir-0.05mg-daily"),
    ],
)
def test_entecavir_in_severe_renal_impairment(creatinine: float, orderable: str) -> None:
    found = reactivation(
        [rituximab("active", "2026-05-01"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE, *renal(creatinine)]
    )
    assert found is not None and entecavir_orders(found) == [orderable]


def test_without_a_weight_the_egfr_stands_for_the_clearance() -> None:
    egfr = observation(PID, EGFR, 42, "mL/min/{1.73_m2}", 12, "2026-06-01")
    found = reactivation(
        [
            rituximab("active", "2026-05-01"),
            HBSAG_NEGATIVE,
            ANTI_HBC_POSITIVE,
            *renal(1.5, weight=None),
            egfr,
        ]
    )
    assert found is not None and entecavir_orders(found) == ["entecavir-0.25mg-daily"]
    assert any("eGFR 42 used for the entecavir dose" in line for line in found.evidence)


def test_creatinine_alone_gives_the_dose_in_text() -> None:
    found = reactivation(
        [rituximab("active", "2026-05-01"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE, *renal(1.5, None)]
    )
    assert found is not None and entecavir_orders(found) == []
    assert "30 to < 50: 0.25 mg once daily" in found.recommendation


def test_no_renal_result_offers_a_creatinine_and_no_entecavir_order() -> None:
    found = reactivation([rituximab("active", "2026-05-01"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE])
    assert found is not None and entecavir_orders(found) == []
    offered = {a.orderable for p in found.proposals for a in p.actions}
    assert offered == {"serum-creatinine", "hbv-dna"}


def test_under_sixteen_the_antiviral_is_text_only() -> None:
    girl = patient(PID, "2011-01-20", "female")  # 15 on 2026-06-15
    found = reactivation(
        [rituximab("active", "2026-05-01"), HBSAG_NEGATIVE, ANTI_HBC_POSITIVE, *renal(0.6, 50)],
        girl,
    )
    assert found is not None and found.indicator == "warning"
    assert entecavir_orders(found) == []
    assert "Entecavir order not offered: age 15 (the adult dose is from 16 years)" in (
        found.evidence
    )


def test_the_entecavir_order_is_complete() -> None:
    orderable = KB.orderables["entecavir-0.5mg-daily"]
    resource = created(orderable, "Patient/p1", TODAY, None, "HBV prophylaxis")
    [dosage] = resource["dosageInstruction"]
    assert dosage["doseAndRate"] == [
        {
            "doseQuantity": {
                "value": 0.5,
                "unit": "mg",
                "system": "http://unitsofmeasure.org",
                "code": "mg",
            }
        }
    ]
    assert dosage["timing"] == {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
    assert dosage["route"]["coding"][0]["code"] == "26643006"
    assert "empty stomach" in dosage["text"]
    assert "coding" not in resource["medicationCodeableConcept"]  # by text: no RxNorm code


# -- the scenarios' cards, in both data modes -----------------------------------------------


def cards_of(client: FlaskClient, name: str, fhir_mock: Any | None) -> dict[str, Any]:
    if fhir_mock is None:
        body = view_request(name, full_view_prefetch(resources_of(name)), None)
    else:
        FakeFhirServer(fhir_mock, resources_of(name))
        body = view_request(name, None, FHIR_BASE)
    response = client.post(URL, json=body)
    assert response.status_code == 200
    return dict(response.get_json())


@pytest.mark.parametrize("fetched", [False, True], ids=["prefetch", "fhir-server"])
def test_the_passive_anti_hbc_card_offers_the_reduced_entecavir_order(
    client: FlaskClient, fhir_mock: Any, fetched: bool
) -> None:
    answer = cards_of(client, "pv-in-rituximab-anti-hbc-after-ig", fhir_mock if fetched else None)
    [card] = answer["cards"]
    assert fired(answer["cards"]) == {"hbv-reactivation": "warning"}
    detail = card["detail"]
    # (140 - 50) x 72 = 6480; 72 x 2.25 = 162; 6480 / 162 = 40.0 mL/min
    assert "(140 − 50 years) × 72 kg ÷ (72 × 2.25 mg/dL) = 6480 ÷ 162 = 40.0 mL/min" in detail
    assert "Anti-HBc may be passively acquired from immune globulin" in detail
    medication = [
        action["resource"]
        for suggestion in card["suggestions"]
        for action in suggestion["actions"]
        if action.get("resource", {}).get("resourceType") == "MedicationRequest"
    ]
    [entecavir] = medication
    [dosage] = entecavir["dosageInstruction"]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 0.25
    assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "d"}
    assert entecavir["subject"] == {"reference": "Patient/pv-in-rituximab-anti-hbc-after-ig"}


@pytest.mark.parametrize("fetched", [False, True], ids=["prefetch", "fhir-server"])
def test_the_six_month_card_offers_entecavir_half_a_milligram(
    client: FlaskClient, fhir_mock: Any, fetched: bool
) -> None:
    answer = cards_of(client, "pv-in-rituximab-6-months-anti-hbc", fhir_mock if fetched else None)
    [card] = answer["cards"]
    assert fired(answer["cards"]) == {"hbv-reactivation": "warning"}
    assert "= 6480 ÷ 108 = 60.0 mL/min" in card["detail"]
    assert "passively" not in card["detail"]
    doses = [
        action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
        for suggestion in card["suggestions"]
        for action in suggestion["actions"]
        if action.get("resource", {}).get("resourceType") == "MedicationRequest"
    ]
    assert doses == [0.5]


def test_accepting_the_entecavir_order_answers_the_card(client: FlaskClient) -> None:
    name = "pv-in-rituximab-6-months-anti-hbc"
    [card] = cards_of(client, name, None)["cards"]
    [order] = [
        action["resource"]
        for suggestion in card["suggestions"]
        for action in suggestion["actions"]
        if action.get("resource", {}).get("resourceType") == "MedicationRequest"
    ]
    signed = {**order, "id": "entecavir-signed", "status": "active"}
    resources = [*resources_of(name), signed]
    body = view_request(name, full_view_prefetch(resources), None)
    assert client.post(URL, json=body).get_json() == {"cards": []}
