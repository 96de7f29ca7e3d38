"""The FHIR resources of the cards' suggestions: built from the findings' proposed actions, and
validated with the R4B models before they are offered.

A create holds a whole draft resource for this patient (``knowledge/orderables.json``). A revised
order is the client's order with only the changed elements replaced (lone objects where R4 wants a
list put in lists, empty values dropped); everything else is kept verbatim. A delete names the
order by ``resourceId``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import date
from typing import Any

from hooks.context.model import IgOrder
from hooks.fhir_models import as_r4_lists
from hooks.findings import DoseChange, Instruction, OrderChange, ProductChange, RateCap
from hooks.knowledge_base.schema import Orderable

UCUM = "http://unitsofmeasure.org"


def without_empty(value: Any) -> Any:
    """Drop null, empty strings, arrays and objects at any depth (CDS Hooks #use-of-json).

    Revised orders echo the client's draft order, which may carry empty values the service must
    not send.
    """
    if isinstance(value, dict):
        cleaned = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [without_empty(v) for v in value]
        return [v for v in items if v not in (None, "", [], {})]
    return value


def created(
    orderable: Orderable, patient: str, today: date, for_order: str | None, why: str
) -> dict[str, Any]:
    """A draft order of ``orderable`` for the patient (a lab, a measurement, a drug, a referral)."""
    resource: dict[str, Any] = {
        "resourceType": orderable.resourceType,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": patient},
        "authoredOn": today.isoformat(),
        "note": [{"text": why}],
    }
    if orderable.resourceType == "ServiceRequest":
        resource["code"] = orderable.code.as_json()
        if for_order is not None:
            resource["reasonReference"] = [{"reference": for_order}]
    else:
        resource["medicationCodeableConcept"] = orderable.code.as_json()
        dosage: dict[str, Any] = {"text": orderable.dosageText}
        if orderable.timing is not None:
            dosage["timing"] = {"repeat": orderable.timing.model_dump()}
        if orderable.route is not None:
            dosage["route"] = orderable.route.as_json()
        if orderable.dose is not None:
            unit = orderable.dose.unit
            dosage["doseAndRate"] = [
                {
                    "doseQuantity": {
                        "value": orderable.dose.value,
                        "unit": unit,
                        "system": UCUM,
                        "code": unit,
                    }
                }
            ]
        resource["dosageInstruction"] = [without_empty(dosage)]
    return resource


class Unrevisable(ValueError):
    """An element the revision changes is not in its FHIR R4 form (``"note": "give slowly"``):
    no revised order can be built from it. The element is named."""


def _list(container: dict[str, Any], key: str, *, at_least_one: bool = False) -> list[Any]:
    """``container[key]``, a list (made if missing); with ``at_least_one``, of objects, and
    holding one object if it was empty."""
    value = container.get(key)
    if value is None:
        value = container[key] = []
    if not isinstance(value, list):
        raise Unrevisable(key)
    if at_least_one:
        if not value:
            value.append({})
        if not all(isinstance(item, dict) for item in value):
            raise Unrevisable(key)
    return value


def _dosages(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return _list(resource, "dosageInstruction", at_least_one=True)


def _note(resource: dict[str, Any], text: str) -> None:
    _list(resource, "note").append({"text": text})


def _cap_rate(dose_and_rate: dict[str, Any], cap: float) -> None:
    """Hold the rate to ``cap`` mg/kg/min: an ordered rate (or range top) above it is lowered to
    it, a lower one is never raised, and an order without a rate gets the range "up to the cap".

    A rate in other units (mL/h, a ratio) is left as the prescriber wrote it: it cannot be
    compared without the patient's weight and the product's concentration.
    """
    limit = {"value": cap, "unit": "mg/kg/min", "system": UCUM, "code": "mg/kg/min"}
    if "rateRatio" in dose_and_rate:
        return
    if "rateRange" in dose_and_rate:
        high = (
            dose_and_rate["rateRange"].get("high")
            if isinstance(dose_and_rate["rateRange"], dict)
            else None
        )
        if isinstance(high, dict) and high.get("code") == "mg/kg/min":
            value = high.get("value")
            if isinstance(value, int | float) and value > cap:
                dose_and_rate["rateRange"]["high"] = limit
        return
    current = dose_and_rate.get("rateQuantity")
    if isinstance(current, dict):
        value = current.get("value", cap)
        if current.get("code") != "mg/kg/min" or not isinstance(value, int | float) or value <= cap:
            return
        dose_and_rate["rateQuantity"] = limit  # above the cap: revised to the cap
        return
    # No rate ordered: the cap is a maximum, not the rate to give (titrate up to it).
    dose_and_rate["rateRange"] = {"high": limit}


def within_cap(dose_and_rate: Mapping[str, Any], cap: float) -> bool:
    """Whether capping this ``doseAndRate`` at ``cap`` would leave it as it is (the revised
    order already holds the rate to the cap)."""
    capped = copy.deepcopy(dict(dose_and_rate))
    _cap_rate(capped, cap)
    return capped == dose_and_rate


def _apply(resource: dict[str, Any], change: OrderChange) -> None:
    if isinstance(change, Instruction):
        for dosage in _dosages(resource):
            _list(dosage, "additionalInstruction").append({"text": change.text})
        _note(resource, change.text)
    elif isinstance(change, RateCap):
        for dosage in _dosages(resource):
            for dose_and_rate in _list(dosage, "doseAndRate", at_least_one=True):
                _cap_rate(dose_and_rate, change.mg_kg_min)
    elif isinstance(change, DoseChange):
        _set_dose(resource, change)
    elif isinstance(change, ProductChange):
        resource.pop("medicationReference", None)
        concept: dict[str, Any] = {"text": change.product.brand}
        if change.product.codings:
            concept["coding"] = [
                {
                    "system": c.system,
                    "code": c.code,
                    **({"display": c.display} if c.display else {}),
                }
                for c in change.product.codings
            ]
        resource["medicationCodeableConcept"] = concept
        _note(resource, change.why)


def _set_dose(resource: dict[str, Any], change: DoseChange) -> None:
    """The dose per administration (and, for SCIG, its interval in weeks). The free-text
    ``dosageInstruction.text`` is rewritten so it cannot contradict the new dose."""
    dosage = _dosages(resource)[0]
    rates = _list(dosage, "doseAndRate", at_least_one=True)
    shown = f"{change.value:g} {change.unit}"
    rates[0]["doseQuantity"] = {
        "value": change.value,
        "unit": change.unit,
        "system": UCUM,
        "code": change.unit,
    }
    if change.every_weeks is not None:
        weeks = change.every_weeks
        dosage["timing"] = {"repeat": {"frequency": 1, "period": weeks, "periodUnit": "wk"}}
        every = "week" if weeks == 1 else f"{weeks:g} weeks"
        dosage["text"] = f"{shown} every {every} ({change.why})"
    else:
        old = dosage.get("text")
        dosage["text"] = f"{shown} per administration, schedule as ordered ({change.why})" + (
            f"; was: {old}" if old else ""
        )
    _note(resource, change.why)


def revised(order: IgOrder, changes: tuple[OrderChange, ...]) -> dict[str, Any]:
    """The whole order with ``changes`` applied, every other element as the client sent it;
    raises :class:`Unrevisable` when an element it changes is malformed."""
    raw: Mapping[str, Any] = order.order.raw
    resource = as_r4_lists(str(raw.get("resourceType")), dict(raw))  # a deep copy
    for change in changes:
        _apply(resource, change)
    cleaned: dict[str, Any] = without_empty(resource)
    return cleaned
