"""Record normalisation (contract §2): statuses, latest-wins, unit conversions, partial dates;
and lenient reading: what no rule reads never matters, what is read and malformed is named."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from contexts import TODAY, context_of

from hooks import text
from hooks.context import ClinicalContext
from hooks.context.model import age_on
from hooks.context.read import days_since, parse_date, within_days
from hooks.evidence import shown


def record_of(*resources: dict[str, Any]) -> ClinicalContext:
    return context_of(resources)


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
    assert parse_date("1950") == date(1950, 1, 1)
    assert parse_date("1950-03") == date(1950, 3, 1)
    assert parse_date("2026-06-15T10:00:00+02:00") == date(2026, 6, 15)
    assert parse_date("2026-13-01") is None
    assert parse_date("yesterday") is None
    # Not FHIR forms: refused (they once became 1 January of the year), never guessed.
    for malformed in ("2026/06/10", "20260610", "2026-6-10", "2026-06-10x", "0000", "2026-00"):
        assert parse_date(malformed) is None, malformed
    assert parse_date("2026-06-15T25:00:00Z") is None


def test_times_with_an_offset_are_dated_on_the_utc_calendar_of_today() -> None:
    """ "Today" is the UTC date of the call: 07:30 on the 16th in Sydney is the 15th in UTC."""
    assert parse_date("2026-06-16T07:30:00+10:00") == date(2026, 6, 15)
    assert parse_date("2026-06-15T23:00:00-05:00") == date(2026, 6, 16)
    assert parse_date("2026-06-15T10:00:00Z") == date(2026, 6, 15)


def test_a_date_a_day_ahead_is_today_and_further_ahead_is_never_recent() -> None:
    """A date without a time is on the sender's calendar, up to a day ahead of UTC."""
    assert days_since(TODAY, date(2026, 6, 16)) == 0
    assert within_days(TODAY, date(2026, 6, 16), 7)
    assert not within_days(TODAY, date(2026, 6, 17), 7)
    assert within_days(TODAY, date(2026, 6, 8), 7) and not within_days(TODAY, date(2026, 6, 7), 7)
    assert not within_days(TODAY, None, 7)
    assert age_on(date(1961, 6, 15), TODAY) == 65
    assert age_on(date(1961, 6, 16), TODAY) == 64


def test_malformed_elements_that_are_read_skip_the_resource_and_are_named() -> None:
    bad_value = observation("bad-value", "29463-7", 70, "kg", "2026-06-10")
    bad_value["valueQuantity"]["value"] = "seventy"
    bad_date = observation("bad-date", "29463-7", 71, "kg", when="last tuesday")
    bad_code = condition("bad-code", "active")
    bad_code["code"] = "DVT"
    record = record_of(observation("ok", "29463-7", 70, "kg"), bad_value, bad_date, bad_code)
    latest = record.latest("body-weight")
    assert latest is not None and latest.reference == "Observation/ok"
    assert {s.reference: s.reason for s in record.skipped} == {
        "Observation/bad-value": "valueQuantity.value is not valid FHIR R4 (not a number)",
        "Observation/bad-date": "effectiveDateTime is not valid FHIR R4 (not a FHIR date)",
        "Condition/bad-code": "code is not valid FHIR R4 (not an object)",
    }


def test_only_the_values_that_can_be_the_latest_are_read() -> None:
    """Older values than the latest usable one are read by no rule: a malformed or unusable old
    value is no reason for a data card."""
    old_bad = observation("old-bad", "29463-7", 70, "kg", "2026-01-01")
    old_bad["valueQuantity"]["value"] = "seventy"
    record = record_of(
        old_bad,
        observation("old-stone", "29463-7", 11, "[stone_av]", "2026-02-01"),
        observation("new", "29463-7", 72, "kg", "2026-06-10"),
        observation("newer-stone", "29463-7", 11, "[stone_av]", "2026-06-12"),
    )
    latest = record.latest("body-weight")
    assert latest is not None and latest.reference == "Observation/new"
    assert [u.entry.reference for u in record.unusable] == ["Observation/newer-stone"]
    assert record.skipped == ()


def test_a_coded_result_without_an_answer_does_not_hide_an_older_one() -> None:
    """A newer HBsAg whose value is a number or absent is not a newer answer: the older
    positive stays the latest, and the unreadable one is named."""
    positive = {
        "coding": [{"system": "http://snomed.info/sct", "code": "10828004"}],
        "text": "Positive",
    }
    older = observation("older", "5195-3", 0, "", "2026-03-01")
    del older["valueQuantity"]
    older["valueCodeableConcept"] = positive
    newer = observation("newer", "5195-3", 250, "{s_co_ratio}", "2026-06-01")
    absent = observation("absent", "5195-3", 0, "", "2026-06-10")
    del absent["valueQuantity"]
    absent["dataAbsentReason"] = {"text": "not performed"}
    record = record_of(older, newer, absent)
    latest = record.latest("hbsag")
    assert latest is not None and latest.reference == "Observation/older"
    assert sorted(u.entry.reference for u in record.unusable) == [
        "Observation/absent",
        "Observation/newer",
    ]
    assert all("no coded or text answer" in u.reason for u in record.unusable)


def test_elements_no_rule_reads_never_make_a_resource_unusable() -> None:
    """FHIR-invalid elsewhere (a string where R4 wants a Reference, an unknown element): still
    read, because the rules do not read those elements."""
    weight = observation("w", "29463-7", 70, "kg")
    weight["subject"] = "Patient/p1"
    weight["performer"] = 42
    weight["madeUpElement"] = {"x": 1}
    record = record_of(weight)
    assert record.latest("body-weight") is not None
    assert record.skipped == ()


def test_a_lone_object_where_r4_wants_a_list_is_read_and_recorded() -> None:
    dvt = condition("dvt", "active")
    dvt["code"]["coding"] = dvt["code"]["coding"][0]
    record = record_of(dvt)
    assert [c.reference for c in record.conditions] == ["Condition/dvt"]
    assert record.conditions[0].codes[0].code == "128053003"
    assert [d.describe() for d in record.deviations] == [
        "Condition/dvt sends code.coding as a single object where FHIR R4 wants a list"
    ]


def test_strict_mode_validates_every_resource_and_names_what_fails() -> None:
    weight = observation("w", "29463-7", 70, "kg")
    weight["subject"] = "Patient/p1"  # a string where R4 wants a Reference
    record = context_of([weight], strict=True)
    assert record.latest("body-weight") is None
    assert [s.reference for s in record.skipped] == ["Observation/w"]
    assert "invalid FHIR R4 at subject" in record.skipped[0].reason


def test_values_are_shown_as_plain_numbers_for_checking() -> None:
    record = record_of(observation("tg", "2571-8", 12, "mmol/L"))
    latest = record.latest("triglycerides")
    assert latest is not None
    # The value as recorded is the record's text, marked for escaping (hooks/text.py).
    assert shown(latest) == f"1062.84 mg/dL (recorded {text.record('12 mmol/L')})"
    assert text.plain(shown(latest)) == "1062.84 mg/dL (recorded 12 mmol/L)"


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
