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
from hooks.rates import Conversion, dose_and_rates, floor2, mg_per_ml, rates_of, volume_unit

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
    orderable: Orderable,
    patient: str,
    today: date,
    for_order: str | None,
    why: str,
    *,
    volume_ml: float | None = None,
    rate_ml_h: float | None = None,
) -> dict[str, Any]:
    """A draft order of ``orderable`` for the patient (a lab, a measurement, a drug, a referral);
    a fluid with the site protocol's volume and rate when they are given."""
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
        if volume_ml and rate_ml_h:
            ml = {"unit": "mL", "system": UCUM, "code": "mL"}
            dosage["text"] = (
                f"{volume_ml:g} mL at {rate_ml_h:g} mL/h before the immune globulin infusion "
                "(site hydration protocol)"
            )
            dosage["doseAndRate"] = [
                {
                    "doseQuantity": {"value": volume_ml, **ml},
                    "rateQuantity": {
                        "value": rate_ml_h,
                        "unit": "mL/h",
                        "system": UCUM,
                        "code": "mL/h",
                    },
                }
            ]
        elif orderable.dose is not None:
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
    no revised order can be built from it. The element is named; ``why`` says it for a card."""

    def __init__(self, element: str, why: str | None = None) -> None:
        super().__init__(element)
        self.why = why or f"the order's {element} is not in its FHIR R4 form"


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


EPSILON = 1e-6


def _limit(mg_kg_min: float) -> dict[str, Any]:
    return {"value": mg_kg_min, "unit": "mg/kg/min", "system": UCUM, "code": "mg/kg/min"}


def _cap_rates(dosages: list[dict[str, Any]], cap: RateCap) -> None:
    """Hold the order's rates to ``cap`` (card contract §7.1, §8 "Rate"): a rate above the limit
    is lowered to it, a lower one is never raised, and an order without a rate gets the range
    "up to the limit". A titration infusion (``cap.initial_mg_kg_min``) that does not already
    start at or below the labelled initial rate gets a range from it to the lower of the ordered
    rate and the limit, on its first ``doseAndRate``.

    Rates in mL/h or mL/kg/min are compared with the conversion the cap carries (the dosing
    weight, the product's concentration); a rate that cannot be converted is left as the
    prescriber wrote it, and then no titration range is added either.
    """
    conversion = Conversion(cap.kg, cap.mg_per_ml)
    items = [item for d in dosages for item in _list(d, "doseAndRate", at_least_one=True)]
    initial = cap.initial_mg_kg_min
    stated = [conversion.mg_kg_min(r.value, r.unit) for item in items for r in rates_of(item)]
    if initial is not None:
        initial = min(initial, cap.mg_kg_min)
        known = [v for v in stated if v is not None]
        if None in stated or (known and min(known) <= initial + EPSILON):
            initial = None
    for index, item in enumerate(items):
        _cap_one(item, cap.mg_kg_min, initial if index == 0 else None, conversion)


def _cap_one(
    item: dict[str, Any], cap: float, initial: float | None, conversion: Conversion
) -> None:
    rates = rates_of(item)
    values = [conversion.mg_kg_min(r.value, r.unit) for r in rates]
    if any(v is None for v in values):
        return  # as written: it cannot be compared
    known = [v for v in values if v is not None]
    if not known:
        # No rate ordered: the limit is a maximum, not the rate to give (titrate up to it).
        span = {"high": _limit(cap)}
        if initial is not None:
            span = {"low": _limit(initial), **span}
        item["rateRange"] = span
        return
    high = max(known)
    if initial is None and high <= cap + EPSILON:
        return
    top = cap if high > cap + EPSILON else floor2(high)
    for key in ("rateQuantity", "rateRatio", "rateRange"):
        item.pop(key, None)
    if initial is not None:
        item["rateRange"] = {"low": _limit(min(initial, top)), "high": _limit(top)}
    elif len(known) > 1:  # a range above the limit: its low end kept, in mg/kg/min
        item["rateRange"] = {"low": _limit(floor2(min(min(known), top))), "high": _limit(top)}
    else:
        item["rateQuantity"] = _limit(top)  # above the limit: revised to the limit


def within_cap(raw: Mapping[str, Any], cap: RateCap) -> bool:
    """Whether capping the order at ``cap`` would leave it as it is (the order already holds
    the rate to the cap, and starts a titration infusion at the initial rate)."""
    dosages = [
        {**d, "doseAndRate": _as_list(d.get("doseAndRate"))}
        for d in _as_list(raw.get("dosageInstruction"))
        if isinstance(d, dict)
    ]
    if not dosages or not any(d["doseAndRate"] for d in dosages):
        return False
    before = copy.deepcopy(dosages)
    after = copy.deepcopy(dosages)
    try:
        _cap_rates(after, cap)
    except Unrevisable:
        return True  # not in its R4 form: the revision says so, a re-check asks nothing
    return after == before


def _restate_rates(
    resource: dict[str, Any], order: IgOrder, changes: tuple[OrderChange, ...]
) -> None:
    """A product switch to another concentration: a rate in volume units (mL/h, mL/kg/min) is
    restated in mg/kg/min on the ordered product's concentration, so the switch never changes
    how fast the immune globulin runs (the limits then apply to the new product)."""
    switch = next((c for c in changes if isinstance(c, ProductChange)), None)
    before = order.product.concentration_percent if order.product else None
    if switch is None or switch.product.concentration_percent == before:
        return
    kg = next((c.kg for c in changes if isinstance(c, RateCap) and c.kg), None)
    conversion = Conversion(kg, mg_per_ml(before))
    for item in dose_and_rates(resource):
        rates = rates_of(item)
        if not any(volume_unit(r.unit) for r in rates):
            continue  # no rate, or a rate in mg/kg/min already
        values = [conversion.mg_kg_min(r.value, r.unit) for r in rates]
        if any(v is None for v in values):
            raise Unrevisable(
                "rate",
                "its rate is in volume units and cannot be restated for a product of another "
                "concentration (no recent weight, or the ordered product's concentration is not "
                "known)",
            )
        known = [v for v in values if v is not None]
        assert isinstance(item, dict)
        for key in ("rateQuantity", "rateRatio", "rateRange"):
            item.pop(key, None)
        if len(known) > 1:
            item["rateRange"] = {
                "low": _limit(floor2(min(known))),
                "high": _limit(floor2(max(known))),
            }
        else:
            item["rateQuantity"] = _limit(floor2(known[0]))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _apply(resource: dict[str, Any], change: OrderChange) -> None:
    if isinstance(change, Instruction):
        for dosage in _dosages(resource):
            _list(dosage, "additionalInstruction").append({"text": change.text})
        _note(resource, change.text)
    elif isinstance(change, RateCap):
        _cap_rates(_dosages(resource), change)
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
    shown = change.shown()  # the grams, and the mL of the product when it is known
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
    _restate_rates(resource, order, changes)
    for change in changes:
        _apply(resource, change)
    cleaned: dict[str, Any] = without_empty(resource)
    return cleaned
