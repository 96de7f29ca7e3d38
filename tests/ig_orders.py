"""Immune globulin orders and record resources for the course and duplicate-therapy tests."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from contexts import KB, PATIENT_ID, SETTINGS, TODAY, context_of

from hooks.context import ClinicalContext
from hooks.engine import evaluate
from hooks.findings import Finding

SNOMED = "http://snomed.info/sct"
ROUTES = {"IV": ("47625008", "Intravenous route"), "SC": ("34206005", "Subcutaneous route")}
REASONS = {
    "gbs": ("40956001", "Guillain-Barré syndrome"),
    "mg": ("91637004", "Myasthenia gravis"),
    "itp": ("32273002", "Immune thrombocytopenia"),
    "pid": ("23238000", "Common variable agammaglobulinemia"),
}


def day(offset: int) -> date:
    """TODAY plus ``offset`` days."""
    return TODAY + timedelta(days=offset)


def ig(
    rid: str,
    *,
    dose: float = 0.4,
    unit: str = "g/kg",
    product: str = "Privigen 10% (immune globulin intravenous, human)",
    route: str = "IV",
    reason: str | None = "gbs",
    on: date | None = None,
    count: int | None = None,
    period: float | None = None,
    period_unit: str = "d",
    start: date | None = None,
    status: str = "draft",
    authored: date = TODAY,
) -> dict[str, Any]:
    """A MedicationRequest: ``on`` gives a ``timing.event``, ``start`` a ``boundsPeriod.start``;
    ``period`` (with ``count``) a ``timing.repeat``."""
    code, display = ROUTES[route]
    timing: dict[str, Any] = {}
    if on is not None:
        timing["event"] = [on.isoformat()]
    repeat: dict[str, Any] = {}
    if period is not None:
        repeat.update(frequency=1, period=period, periodUnit=period_unit)
    if count is not None:
        repeat["count"] = count
    if start is not None:
        repeat["boundsPeriod"] = {"start": start.isoformat()}
    if repeat:
        timing["repeat"] = repeat
    dosage: dict[str, Any] = {
        "route": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit, "code": unit}}],
    }
    if timing:
        dosage["timing"] = timing
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {"text": product},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": authored.isoformat(),
        "dosageInstruction": [dosage],
    }
    if reason is not None:
        snomed, text = REASONS[reason]
        order["reasonCode"] = [
            {"coding": [{"system": SNOMED, "code": snomed, "display": text}], "text": text}
        ]
    return order


def observation(rid: str, loinc: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": day(-3).isoformat(),
        **value,
    }


WEIGHT = observation("weight", "29463-7", valueQuantity={"value": 70, "unit": "kg", "code": "kg"})
CREATININE = observation(
    "creatinine", "2160-0", valueQuantity={"value": 0.9, "unit": "mg/dL", "code": "mg/dL"}
)
GROUP_A = observation("abo", "883-9", valueCodeableConcept={"text": "A"})
RECORD = [WEIGHT, CREATININE]


def gbs_days(n: int, dose: float = 0.4, first: int = 0) -> list[dict[str, Any]]:
    """A GBS course written as ``n`` daily orders, one a day from TODAY + ``first``."""
    return [ig(f"gbs-day-{i + 1}", dose=dose, on=day(first + i)) for i in range(n)]


def call(
    orders: list[dict[str, Any]],
    record: list[dict[str, Any]] | None = None,
    *,
    hook: str = "order-sign",
    selections: list[str] | None = None,
) -> ClinicalContext:
    return context_of(
        [*RECORD, *(record or [])],
        orders,
        hook=hook,
        selections=[f"MedicationRequest/{s}" for s in selections] if selections else None,
    )


def findings(ctx: ClinicalContext, topic: str) -> list[Finding]:
    return [f for f in evaluate(ctx, KB, SETTINGS) if f.topic == topic]
