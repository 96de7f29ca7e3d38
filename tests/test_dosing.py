"""The dose arithmetic a pharmacist checks: units, regimens, course totals, adjusted weight."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from contexts import THRESHOLDS, medication_order

from hooks.body_weight import computed_bmi, ideal_body_weight
from hooks.context import ObservationEntry
from hooks.dosing import Dose, UnreadableDose
from hooks.dosing import read_dose as read_order_dose
from hooks.rules.dosing_weight import rounded
from hooks.rules.hemolysis import blood_group
from hooks.text import plain

WEIGHT = ObservationEntry(
    "Observation/w",
    "body-weight",
    None,
    "Body weight",
    "final",
    date(2026, 6, 1),
    70.0,
    "kg",
    "70 kg",
)


def order(
    quantity: dict[str, Any] | None, repeat: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    dosage: dict[str, Any] = {}
    if quantity is not None:
        dosage["doseAndRate"] = [{"doseQuantity": quantity}]
    if repeat is not None:
        dosage["timing"] = {"repeat": repeat}
    return {"resourceType": "MedicationRequest", "id": "o", "dosageInstruction": [dosage], **extra}


def read_dose(raw: dict[str, Any], weight: ObservationEntry | None) -> Dose | UnreadableDose:
    return read_order_dose(medication_order(raw), weight)


def q(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


DAILY_5 = {"frequency": 1, "period": 1, "periodUnit": "d", "count": 5}


@pytest.mark.parametrize(
    ("quantity", "course_g", "course_g_per_kg"),
    [
        (q(0.4, "g/kg"), 140, 2.0),
        (q(400, "mg/kg"), 140, 2.0),
        (q(28, "g"), 140, 2.0),
        (q(28000, "mg"), 140, 2.0),
    ],
)
def test_every_unit_gives_the_same_course(
    quantity: dict[str, Any], course_g: float, course_g_per_kg: float
) -> None:
    dose = read_dose(order(quantity, DAILY_5), WEIGHT)
    assert isinstance(dose, Dose)
    assert dose.course_g == pytest.approx(course_g)
    assert dose.course_g_per_kg == pytest.approx(course_g_per_kg)
    assert dose.at_least(THRESHOLDS.high_dose_g_per_kg)


@pytest.mark.parametrize(
    ("repeat", "extra", "administrations"),
    [
        (
            {
                "frequency": 1,
                "period": 1,
                "periodUnit": "d",
                "boundsDuration": {"value": 5, "unit": "d"},
            },
            {},
            5,
        ),
        (
            {
                "frequency": 1,
                "period": 1,
                "periodUnit": "d",
                "boundsDuration": {"value": 1, "code": "wk"},
            },
            {},
            7,
        ),
        (
            {"frequency": 1, "period": 1, "periodUnit": "d"},
            {"dispenseRequest": {"expectedSupplyDuration": {"value": 3, "unit": "days"}}},
            3,
        ),
        ({"frequency": 1, "period": 1, "periodUnit": "d"}, {}, 1),
        ({"frequency": 2, "period": 1, "periodUnit": "d", "count": 4}, {}, 4),
    ],
)
def test_daily_regimen_administrations(
    repeat: dict[str, Any], extra: dict[str, Any], administrations: int
) -> None:
    dose = read_dose(order(q(0.4, "g/kg"), repeat, **extra), WEIGHT)
    assert isinstance(dose, Dose) and dose.regimen == "daily"
    assert dose.administrations == administrations


def test_interval_regimen_is_one_cycle_and_supply_does_not_multiply() -> None:
    dose = read_dose(
        order(
            q(0.5, "g/kg"),
            {"frequency": 1, "period": 4, "periodUnit": "wk"},
            dispenseRequest={"expectedSupplyDuration": {"value": 84, "unit": "d"}},
        ),
        WEIGHT,
    )
    assert isinstance(dose, Dose) and dose.regimen == "interval"
    assert dose.compared_g_per_kg == 0.5 and dose.interval_days == 28
    assert not dose.at_least(THRESHOLDS.high_dose_g_per_kg)


def test_no_timing_is_a_single_administration() -> None:
    dose = read_dose(order(q(2, "g/kg")), WEIGHT)
    assert isinstance(dose, Dose) and dose.regimen == "single" and dose.course_g_per_kg == 2


def test_without_weight_only_what_is_known() -> None:
    per_kg = read_dose(order(q(0.4, "g/kg"), DAILY_5), None)
    absolute = read_dose(order(q(28, "g"), DAILY_5), None)
    assert isinstance(per_kg, Dose) and per_kg.course_g_per_kg == 2 and per_kg.course_g is None
    assert (
        isinstance(absolute, Dose) and absolute.course_g == 140 and absolute.course_g_per_kg is None
    )


@pytest.mark.parametrize(
    ("medication_request", "why"),
    [
        (order(q(200, "mL"), DAILY_5), "it is a volume"),  # no concentration given
        (order(q(2, "vial"), DAILY_5), "is not g, mg, g/kg or mg/kg"),
        (order(None, DAILY_5), "no dose quantity"),
        (
            {
                "resourceType": "MedicationRequest",
                "dosageInstruction": [{"doseAndRate": [{"doseRange": {}}]}],
            },
            "dose range",
        ),
        (
            {"resourceType": "MedicationRequest", "dosageInstruction": [{"doseAndRate": 5}]},
            "dosageInstruction.doseAndRate not a list of objects",
        ),
        (order(q(2, "g/kg"), {"frequency": 1, "period": "one", "periodUnit": "d"}), "not a number"),
    ],
)
def test_unreadable_doses_say_why(medication_request: dict[str, Any], why: str) -> None:
    dose = read_dose(medication_request, WEIGHT)
    assert isinstance(dose, UnreadableDose) and why in dose.reason


def test_steps_show_the_arithmetic() -> None:
    dose = read_dose(order(q(600, "mg/kg"), DAILY_5), WEIGHT)
    assert isinstance(dose, Dose)
    first = plain(dose.steps[0])  # the unit and the weight's id are the record's, marked
    assert first.startswith("Per administration: 600 mg/kg × 70 kg actual weight")
    assert "= 42 g" in first
    assert dose.steps[-1] == "Course total: 5 × per administration = 210 g = 3 g/kg"


def test_devine_ideal_body_weight_and_rounding() -> None:
    assert ideal_body_weight(152.4, "female", THRESHOLDS) == pytest.approx(45.5)
    assert ideal_body_weight(177.8, "male", THRESHOLDS) == pytest.approx(50 + 2.3 * 10)
    assert rounded(29.66, 5) == 30 and rounded(1.2, 5) == 5 and rounded(29.66, 0) == 29.7


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("A", "A"),
        ("AB", "AB"),
        ("B Rh(D) positive", "B"),
        ("O negative", "O"),
        ("Blood group A", "A"),
        ("A+", "A"),
        ("unknown", None),
    ],
)
def test_blood_group_from_text(text: str, group: str | None) -> None:
    assert blood_group(text) == group


@pytest.mark.parametrize("height_cm", [1e-170, 1e200, 0.0, -170.0])
def test_a_height_that_gives_no_finite_bmi_gives_none_not_a_crash(height_cm: float) -> None:
    """1e-170 cm once raised ZeroDivisionError and 1e200 OverflowError: the call was a 500 and
    every other card was lost."""
    height = replace(
        WEIGHT, reference="Observation/h", concept="body-height", value=height_cm, unit="cm"
    )
    assert computed_bmi(WEIGHT, height) is None


def test_bmi_is_computed_from_weight_and_height() -> None:
    height = replace(WEIGHT, reference="Observation/h", concept="body-height", value=160.0)
    assert computed_bmi(WEIGHT, height) == pytest.approx(27.34, abs=0.01)
