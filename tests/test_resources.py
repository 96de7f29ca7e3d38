"""Suggested resources are complete, valid FHIR that keep the prescriber's order intact."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from contexts import KB, context_of, ig_order

from hooks.context import IgOrder
from hooks.fhir_models import validation_error
from hooks.findings import DoseChange, Instruction, ProductChange, RateCap
from hooks.resources import Unrevisable, created, revised

CAP = 3.3


def octagam_raw(dose_and_rate: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    dosage: dict[str, Any] = {"text": "2 g/kg over 2 days"}
    if dose_and_rate is not None:
        dosage["doseAndRate"] = [dose_and_rate]
    return {
        "resourceType": "MedicationRequest",
        "id": "o1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},  # the context patient (contexts.PATIENT)
        "dosageInstruction": [dosage],
        "medicationCodeableConcept": {"text": "Octagam 10%"},
        **extra,
    }


def octagam_order(dose_and_rate: dict[str, Any] | None, **extra: Any) -> IgOrder:
    found = ig_order(octagam_raw(dose_and_rate, **extra))
    assert isinstance(found, IgOrder)
    return found


def rate(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": "http://unitsofmeasure.org", "code": code}


def updated_rate(order: IgOrder) -> Any:
    resource = revised(order, (Instruction("slow down"), RateCap(CAP)))
    assert validation_error(resource) is None, "a valid MedicationRequest"
    assert resource["dosageInstruction"][0]["text"] == "2 g/kg over 2 days", "the rest is kept"
    dose_and_rate = resource["dosageInstruction"][0]["doseAndRate"][0]
    return dose_and_rate.get("rateQuantity") or dose_and_rate.get("rateRange")


def test_octagam_10_has_the_label_rate_cap() -> None:
    assert octagam_order(None).product.rate_cap_at_risk_mg_kg_min == CAP  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {"high": rate(CAP, "mg/kg/min")}),  # no rate: "up to the cap", not a set rate
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
    assert (
        updated_rate(order)
        == order.order.raw["dosageInstruction"][0]["doseAndRate"][0]["rateRange"]
    )


def test_switch_product_keeps_dose_and_route() -> None:
    order = octagam_order({"doseQuantity": {"value": 2, "unit": "g/kg"}})
    low = next(p for p in KB.catalogue.products if p.low_iga and not p.family and "IV" in p.routes)
    resource = revised(order, (ProductChange(low, "low IgA"),))
    assert validation_error(resource) is None
    assert resource["medicationCodeableConcept"]["text"] == low.brand
    assert resource["dosageInstruction"] == order.order.raw["dosageInstruction"]
    assert resource["id"] == "o1"


def test_updates_never_echo_empty_values_of_the_clients_draft() -> None:
    order = octagam_order(
        {"doseQuantity": {"value": 2, "unit": "g/kg", "system": ""}},
        note=[],
        dispenseRequest={"expectedSupplyDuration": {}},
    )
    resource = revised(order, (Instruction("slow down"),))
    assert "dispenseRequest" not in resource
    assert "system" not in resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert resource["note"] == [{"text": "slow down"}]


def test_a_revised_sandbox_order_is_valid_r4_with_lone_objects_put_in_lists() -> None:
    order = octagam_order(None, category={"text": "inpatient"}, reasonCode={"text": "ITP"})
    assert validation_error(dict(order.order.raw)) is not None, "the Sandbox shape is not R4"
    resource = revised(order, (Instruction("slow down"),))
    assert validation_error(resource) is None
    assert resource["category"] == [{"text": "inpatient"}]
    assert resource["reasonCode"] == [{"text": "ITP"}]


def test_the_client_order_is_never_changed_in_place() -> None:
    order = octagam_order({"doseQuantity": {"value": 2, "unit": "g/kg"}})
    before = repr(order.order.raw)
    revised(order, (Instruction("slow down"), RateCap(CAP)))
    assert repr(order.order.raw) == before


@pytest.mark.parametrize(
    ("element", "change", "named"),
    [
        ({"note": "give slowly"}, Instruction("slow down"), "note"),
        ({"dosageInstruction": ["weekly"]}, RateCap(CAP), "dosageInstruction"),
        (
            {"dosageInstruction": [{"additionalInstruction": "slow"}]},
            Instruction("slow down"),
            "additionalInstruction",
        ),
        (
            {"dosageInstruction": [{"doseAndRate": ["5 g"]}]},
            DoseChange(5, "g", "why"),
            "doseAndRate",
        ),
    ],
    ids=["note", "dosage", "instruction", "dose-and-rate"],
)
def test_a_malformed_element_the_revision_changes_is_named_not_a_crash(
    element: dict[str, Any], change: Any, named: str
) -> None:
    """Elements no rule reads are kept verbatim; when the revision must change one that is not
    in its R4 form, no revised order can be built, and the element is named."""
    order = octagam_order(None)
    raw = {**order.order.raw, **element}
    with pytest.raises(Unrevisable) as raised:
        revised(replace(order, order=replace(order.order, raw=raw)), (change,))
    assert str(raised.value) == named


def test_an_order_with_a_malformed_note_keeps_its_cards_and_says_why_no_revision(
    tmp_path: Path,
) -> None:
    from conftest import (
        cards_by_topic,
        full_prefetch,
        hook_request,
        make_app,
        order_for,
        scenario_resources,
    )

    order = order_for("privigen-iv", "ivig-in-ckd") | {"note": "give slowly"}
    prefetch = full_prefetch(scenario_resources("ivig-in-ckd"))
    body = hook_request("order-select", "ivig-in-ckd", [order], prefetch=prefetch)
    response = make_app(tmp_path).test_client().post("/cds-services/ivig-order-select", json=body)
    assert response.status_code == 200
    cards = cards_by_topic(response.get_json()["cards"])
    assert (
        "No revised order offered: the order's note is not in its FHIR R4 form"
        in (cards["renal-risk"]["detail"])
    )


@pytest.mark.parametrize("name", sorted(KB.orderables))
def test_every_orderable_makes_a_valid_draft(name: str) -> None:
    ctx = context_of()
    resource = created(
        KB.orderables[name], ctx.patient.reference, ctx.today, "MedicationRequest/o1", "why"
    )
    assert validation_error(resource) is None
    assert resource["status"] == "draft" and resource["subject"] == {"reference": "Patient/p1"}
