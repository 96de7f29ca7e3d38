"""Complete FHIR resources for the cards' suggestions, built from ``knowledge/orderables.json``.

A create holds a whole draft resource for this patient; an update holds the whole order with the
change applied (everything else kept); a delete names the order by ``resourceId``.
"""

from __future__ import annotations

import copy
from typing import Any

from cds_service.cards import Action
from hooks.catalogue import Product
from hooks.knowledge_base import KnowledgeBase
from hooks.orders import IgOrder
from hooks.record import PatientRecord


def without_empty(value: Any) -> Any:
    """Drop null, empty strings, arrays and objects at any depth (CDS Hooks #use-of-json).

    Updates echo the client's draft order, which may carry empty values the service must not send.
    """
    if isinstance(value, dict):
        cleaned = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        cleaned_items = [without_empty(v) for v in value]
        return [v for v in cleaned_items if v not in (None, "", [], {})]
    return value


def _update(description: str, resource: dict[str, Any]) -> Action:
    return Action("update", description, resource=without_empty(resource))


def _base(kind: str, record: PatientRecord, why: str) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": record.patient_reference},
        "authoredOn": record.today.isoformat(),
        "note": [{"text": why}],
    }


def create(
    kb: KnowledgeBase, name: str, record: PatientRecord, order: IgOrder | None, why: str
) -> Action:
    """A create action for the orderable ``name`` (a lab, a measurement, a drug or a referral)."""
    spec = kb.orderables[name]
    resource = _base(spec["resourceType"], record, why)
    if spec["resourceType"] == "ServiceRequest":
        resource["code"] = copy.deepcopy(spec["code"])
        if order is not None:
            resource["reasonReference"] = [{"reference": order.reference}]
    else:
        resource["medicationCodeableConcept"] = copy.deepcopy(spec["code"])
        dosage: dict[str, Any] = {"text": spec["dosageText"]}
        if spec.get("route"):
            dosage["route"] = copy.deepcopy(spec["route"])
        resource["dosageInstruction"] = [dosage]
    return Action("create", f"Order {spec['code']['text']}", resource=resource)


def create_for_patient(kb: KnowledgeBase, name: str, record: PatientRecord, why: str) -> Action:
    """A create action that answers the chart, not an order (patient-view)."""
    return create(kb, name, record, None, why)


def delete(order: IgOrder) -> Action:
    return Action("delete", f"Remove the {order.product_name} order", resource_id=order.reference)


def _append_note(resource: dict[str, Any], text: str) -> None:
    resource.setdefault("note", []).append({"text": text})


def _cap_rate(dose_and_rate: dict[str, Any], cap: float) -> None:
    """Set the rate to ``cap`` mg/kg/min unless the order already has a rate at or below it.

    A rate in other units (mL/h, a range, a ratio) is left as the prescriber wrote it: it cannot
    be compared without the patient's weight and the product's concentration.
    """
    if "rateRange" in dose_and_rate or "rateRatio" in dose_and_rate:
        return
    current = dose_and_rate.get("rateQuantity")
    if current is not None and (
        current.get("code") != "mg/kg/min" or float(current.get("value", cap)) <= cap
    ):
        return
    dose_and_rate["rateQuantity"] = {
        "value": cap,
        "unit": "mg/kg/min",
        "system": "http://unitsofmeasure.org",
        "code": "mg/kg/min",
    }


def with_instruction(order: IgOrder, text: str, rate_cap_mg_kg_min: float | None = None) -> Action:
    """Update the order: add an administration instruction, and a label rate cap if there is one."""
    resource = copy.deepcopy(order.resource)
    dosages = resource.get("dosageInstruction") or []
    if not dosages:
        dosages = resource["dosageInstruction"] = [{}]
    for dosage in dosages:
        dosage.setdefault("additionalInstruction", []).append({"text": text})
        if rate_cap_mg_kg_min is not None:
            for dose_and_rate in dosage.setdefault("doseAndRate", [{}]):
                _cap_rate(dose_and_rate, rate_cap_mg_kg_min)
    _append_note(resource, text)
    return _update(text, resource)


def with_dose(
    order: IgOrder, value: float, unit: str, why: str, weekly_every: float | None = None
) -> Action:
    """Update the order's dose per administration (and, for SCIG, its interval in weeks).

    The free-text ``dosageInstruction.text`` is rewritten so it cannot contradict the new dose;
    everything else of the order is kept.
    """
    resource = copy.deepcopy(order.resource)
    dosages = resource.get("dosageInstruction") or []
    if not dosages:
        dosages = resource["dosageInstruction"] = [{}]
    dosage = dosages[0]
    rates = dosage.get("doseAndRate") or [{}]
    dosage["doseAndRate"] = rates
    shown = f"{value:g} {unit}"
    rates[0]["doseQuantity"] = {
        "value": value,
        "unit": unit,
        "system": "http://unitsofmeasure.org",
        "code": unit,
    }
    if weekly_every is not None:
        dosage["timing"] = {"repeat": {"frequency": 1, "period": weekly_every, "periodUnit": "wk"}}
        every = "week" if weekly_every == 1 else f"{weekly_every:g} weeks"
        dosage["text"] = f"{shown} every {every} ({why})"
    else:
        old = dosage.get("text")
        dosage["text"] = f"{shown} per administration, schedule as ordered ({why})" + (
            f"; was: {old}" if old else ""
        )
    _append_note(resource, why)
    return _update(f"Set the dose to {shown} per administration", resource)


def switch_product(order: IgOrder, product: Product, why: str) -> Action:
    """Update the order to another catalogue product, keeping dose, route and everything else."""
    resource = copy.deepcopy(order.resource)
    resource.pop("medicationReference", None)
    concept: dict[str, Any] = {"text": product.brand}
    if product.codings:
        concept["coding"] = [
            {"system": c.system, "code": c.code, **({"display": c.display} if c.display else {})}
            for c in product.codings
        ]
    resource["medicationCodeableConcept"] = concept
    _append_note(resource, why)
    return _update(f"Change the product to {product.brand}", resource)
