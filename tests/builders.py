"""FHIR R4 resources for tests that write their own patients: conditions, observations,
allergies and immune globulin orders, coded from the knowledge's own value sets."""

from __future__ import annotations

from typing import Any

from contexts import KB

SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
ROUTE_CODES = {"IV": "47625008", "SC": "34206005"}
WEIGHT, HEIGHT, CREATININE, EGFR = "29463-7", "8302-2", "2160-0", "33914-3"


def code_of(valueset: str) -> dict[str, Any] | None:
    """A code of the value set (SNOMED CT preferred); None for a text-only set."""
    codes = sorted(KB.valueset(valueset).codes)
    preferred = [c for c in codes if c[0] == SNOMED] or codes
    if not preferred or "text-only" in preferred[0][0]:
        return None
    system, code = preferred[0]
    return {"system": system, "code": code}


def patient(patient_id: str, born: str, gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": patient_id, "birthDate": born, "gender": gender}


def condition(
    patient_id: str, valueset: str, text: str, index: int, onset: str = "2020-01-01"
) -> dict[str, Any]:
    coding = code_of(valueset)
    code: dict[str, Any] = {"text": text, **({"coding": [coding]} if coding else {})}
    return {
        "resourceType": "Condition",
        "id": f"{patient_id}-c{index}",
        "subject": {"reference": f"Patient/{patient_id}"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": code,
        "onsetDateTime": onset,
    }


def observation(
    patient_id: str, loinc: str, value: float, unit: str, index: int, when: str = "2026-06-10"
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"{patient_id}-o{index}",
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def allergy(patient_id: str, text: str, index: int, criticality: str = "low") -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": f"{patient_id}-a{index}",
        "patient": {"reference": f"Patient/{patient_id}"},
        "code": {"text": text},
        "criticality": criticality,
    }


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def ig_order(
    patient_id: str,
    order_id: str,
    product: str,
    *,
    dose: float,
    unit: str = "g/kg",
    route: str = "IV",
    repeat: dict[str, Any] | None = None,
    day: str | None = None,
    rate_mg_kg_min: float | None = None,
    reason: str | None = None,
    status: str = "draft",
    authored: str = "2026-06-15",
) -> dict[str, Any]:
    """A MedicationRequest for an immune globulin product named by its brand text."""
    timing: dict[str, Any] = {
        "repeat": repeat or {"frequency": 1, "period": 1, "periodUnit": "d", "count": 1}
    }
    if day is not None:
        timing["event"] = [day]
    dose_and_rate: dict[str, Any] = {"doseQuantity": quantity(dose, unit)}
    if rate_mg_kg_min is not None:
        dose_and_rate["rateQuantity"] = quantity(rate_mg_kg_min, "mg/kg/min")
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": authored,
        "medicationCodeableConcept": {"text": product},
        "dosageInstruction": [
            {
                "route": {"coding": [{"system": SNOMED, "code": ROUTE_CODES[route]}]},
                "timing": timing,
                "doseAndRate": [dose_and_rate],
            }
        ],
    }
    coding = code_of(reason) if reason else None
    if coding:
        order["reasonCode"] = [{"coding": [coding]}]
    return order
