"""Suggested orders are complete FHIR resources that keep the prescriber's order intact."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.fhir.parse import SkippedResource, parse_resource
from hooks import suggested_orders
from hooks.knowledge_base import load_knowledge
from hooks.orders import IgOrder, OrderRecogniser

KB = load_knowledge()
CAP = 3.3


def octagam_order(dose_and_rate: dict[str, Any] | None) -> IgOrder:
    dosage: dict[str, Any] = {"text": "2 g/kg over 2 days"}
    if dose_and_rate is not None:
        dosage["doseAndRate"] = [dose_and_rate]
    resource = {
        "resourceType": "MedicationRequest",
        "id": "o1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "dosageInstruction": [dosage],
        "medicationCodeableConcept": {"text": "Octagam 10%"},
    }
    found = OrderRecogniser(KB).recognise(resource, {}, lambda _ref: None)
    assert isinstance(found, IgOrder)
    return found


def rate(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": "http://unitsofmeasure.org", "code": code}


def updated_rate(order: IgOrder) -> Any:
    action = suggested_orders.with_instruction(order, "slow down", CAP)
    resource = action.resource
    assert resource is not None
    assert not isinstance(parse_resource(resource), SkippedResource), "a valid MedicationRequest"
    assert resource["dosageInstruction"][0]["text"] == "2 g/kg over 2 days", "the rest is kept"
    return resource["dosageInstruction"][0]["doseAndRate"][0].get("rateQuantity")


def test_octagam_10_has_the_label_rate_cap() -> None:
    assert octagam_order(None).product.rate_cap_at_risk_mg_kg_min == CAP  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, rate(CAP, "mg/kg/min")),  # no rate: the cap is set
        ({"rateQuantity": rate(8, "mg/kg/min")}, rate(CAP, "mg/kg/min")),  # above the cap: lowered
        ({"rateQuantity": rate(1, "mg/kg/min")}, rate(1, "mg/kg/min")),  # below: kept
        ({"rateQuantity": rate(100, "mL/h")}, rate(100, "mL/h")),  # other unit: not comparable
    ],
)
def test_rate_cap_never_raises_or_rewrites_a_prescribed_rate(
    given: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    assert updated_rate(octagam_order(given)) == expected


def test_rate_range_is_left_alone() -> None:
    order = octagam_order(
        {"rateRange": {"low": rate(0.5, "mg/kg/min"), "high": rate(2, "mg/kg/min")}}
    )
    assert updated_rate(order) is None


def test_switch_product_keeps_dose_and_route() -> None:
    order = octagam_order({"doseQuantity": {"value": 2, "unit": "g/kg"}})
    low = KB.catalogue.by_id(
        next(p.id for p in KB.catalogue.products if p.low_iga and not p.family and "IV" in p.routes)
    )
    resource = suggested_orders.switch_product(order, low, "low IgA").resource
    assert resource is not None
    assert resource["medicationCodeableConcept"]["text"] == low.brand
    assert resource["dosageInstruction"] == order.resource["dosageInstruction"]
    assert resource["id"] == "o1"


def test_updates_never_echo_empty_values_of_the_clients_draft() -> None:
    order = octagam_order({"doseQuantity": {"value": 2, "unit": "g/kg", "system": ""}})
    order.resource["note"] = []
    order.resource["dispenseRequest"] = {"expectedSupplyDuration": {}}
    resource = suggested_orders.with_instruction(order, "slow down").resource
    assert resource is not None
    assert "dispenseRequest" not in resource
    assert "system" not in resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert resource["note"] == [{"text": "slow down"}]
