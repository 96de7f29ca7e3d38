"""Record normalisation (contract §2): statuses, latest-wins, unit conversions, partial dates."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cds_service.fhir.parse import parse_resources
from hooks.knowledge_base import load_knowledge
from hooks.record import PatientRecord, age_on, as_date, build_record

KB = load_knowledge()
TODAY = date(2026, 6, 15)
PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1961-06-15", "gender": "female"}


def record_of(*resources: dict[str, Any]) -> PatientRecord:
    patient, _ = parse_resources([PATIENT])
    parsed, skipped = parse_resources(list(resources))
    return build_record(patient[0], parsed, KB, TODAY, skipped, {})


def observation(
    oid: str, code: str, value: float, unit: str, when: str = "2026-06-01", status: str = "final"
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def condition(
    cid: str, clinical: str | None, verification: str | None = "confirmed"
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/p1"},
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "128053003"}],
            "text": "DVT",
        },
    }
    if clinical:
        resource["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical,
                }
            ]
        }
    if verification:
        resource["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        }
    return resource


@pytest.mark.parametrize(
    ("code", "value", "unit", "concept", "expected"),
    [
        ("14682-9", 150, "umol/L", "serum-creatinine", 150 / 88.4),
        ("2160-0", 1.2, "mg/dL", "serum-creatinine", 1.2),
        ("29463-7", 154, "[lb_av]", "body-weight", 154 * 0.4536),
        ("2458-8", 0.05, "g/L", "serum-iga", 5.0),
        ("2571-8", 12, "mmol/L", "triglycerides", 12 * 88.57),
        ("8302-2", 65, "[in_i]", "body-height", 165.1),
    ],
)
def test_units_are_converted(
    code: str, value: float, unit: str, concept: str, expected: float
) -> None:
    latest = record_of(observation("o1", code, value, unit)).latest(concept)
    assert latest is not None and latest.value == pytest.approx(expected, rel=1e-6)


def test_unconvertible_unit_is_kept_aside_with_the_reason() -> None:
    record = record_of(observation("o1", "29463-7", 11, "[stone_av]"))
    assert record.latest("body-weight") is None
    assert [u.entry.reference for u in record.unusable] == ["Observation/o1"]
    assert "cannot be converted to kg" in record.unusable[0].reason


def test_latest_by_effective_date_wins_and_cancelled_never_counts() -> None:
    record = record_of(
        observation("old", "29463-7", 60, "kg", "2026-05-01"),
        observation("new", "29463-7", 70, "kg", "2026-06-10"),
        observation("cancelled", "29463-7", 99, "kg", "2026-06-14", status="cancelled"),
        observation("eie", "29463-7", 98, "kg", "2026-06-14", status="entered-in-error"),
    )
    latest = record.latest("body-weight")
    assert latest is not None and latest.reference == "Observation/new"


def test_preliminary_counts_only_when_nothing_final_exists() -> None:
    only_preliminary = record_of(observation("p", "29463-7", 80, "kg", "2026-06-10", "preliminary"))
    assert only_preliminary.latest("body-weight").reference == "Observation/p"  # type: ignore[union-attr]
    both = record_of(
        observation("p", "29463-7", 80, "kg", "2026-06-14", "preliminary"),
        observation("f", "29463-7", 70, "kg", "2026-06-01", "final"),
    )
    assert both.latest("body-weight").reference == "Observation/f"  # type: ignore[union-attr]


@pytest.mark.parametrize(("days_ago", "recent"), [(0, True), (30, True), (31, False)])
def test_recent_window_includes_both_ends(days_ago: int, recent: bool) -> None:
    when = date.fromordinal(TODAY.toordinal() - days_ago).isoformat()
    record = record_of(observation("w", "29463-7", 70, "kg", when))
    assert (record.latest_within("body-weight", 30) is not None) is recent


def test_condition_statuses() -> None:
    record = record_of(
        condition("active", "active"),
        condition("resolved", "resolved"),
        condition("refuted", "active", "refuted"),
        condition("eie", None, "entered-in-error"),
        condition("no-status", None, None),
    )
    assert {c.reference: c.active for c in record.conditions} == {
        "Condition/active": True,
        "Condition/resolved": False,
        "Condition/no-status": True,
    }


def test_current_medications_only() -> None:
    def request(mid: str, status: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationRequest",
            "id": mid,
            "status": status,
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "Ibuprofen"},
        }

    record = record_of(
        *(
            request(s, s)
            for s in ("active", "on-hold", "stopped", "completed", "cancelled", "draft")
        ),
        {
            "resourceType": "MedicationStatement",
            "id": "ms",
            "status": "active",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "Estradiol"},
        },
    )
    assert sorted(m.reference for m in record.medications) == [
        "MedicationRequest/active",
        "MedicationRequest/on-hold",
        "MedicationStatement/ms",
    ]


def test_partial_dates_and_age() -> None:
    assert as_date("1950") == date(1950, 1, 1)
    assert as_date("1950-03") == date(1950, 3, 1)
    assert age_on(date(1961, 6, 15), TODAY) == 65
    assert age_on(date(1961, 6, 16), TODAY) == 64


def test_invalid_resources_are_skipped_not_fatal() -> None:
    record = record_of(
        observation("ok", "29463-7", 70, "kg"), {"resourceType": "Observation", "id": "bad"}
    )
    assert record.latest("body-weight") is not None
    assert [s.reference for s in record.skipped] == ["Observation/bad"]


def test_values_are_shown_as_plain_numbers_for_checking() -> None:
    record = record_of(observation("tg", "2571-8", 12, "mmol/L"))
    latest = record.latest("triglycerides")
    assert latest is not None
    assert latest.shown == "1062.84 mg/dL (recorded 12 mmol/L)"


def test_medication_reference_outside_the_request_is_flagged_unidentified() -> None:
    record = record_of(
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationReference": {"reference": "Medication/x"},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "m2",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationReference": {"reference": "Medication/y", "display": "Estradiol 1 mg"},
        },
    )
    assert {m.reference: m.identified for m in record.medications} == {
        "MedicationRequest/m1": False,
        "MedicationRequest/m2": True,
    }
