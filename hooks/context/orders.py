"""Medication orders read element by element, and which of them are immune globulin (contract §1).

An order's elements are read one group at a time (medication, dosage, dispense, reason): a
malformed group is named in ``unreadable`` and only the checks that read it are lost, never the
order's contraindication checks. The route is the ordered one; else the ATC code's; else the
product's only labelled route; else IV, said so, because the renal boxed warning must not be
skipped for lack of a route.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypeVar

from hooks.context.model import Dosage, IgOrder, MedicationOrder, Repeat, Route, Schedule
from hooks.context.read import Concept, Malformed, Quantity, Reader
from hooks.knowledge_base import KnowledgeBase
from hooks.text import record

T = TypeVar("T")


def _dosage(item: Mapping[str, Any], r: Reader, path: str) -> Dosage:
    route = r.concept(item.get("route"), f"{path}.route")
    rates = r.objects(item.get("doseAndRate"), f"{path}.doseAndRate")
    first = rates[0] if rates else {}
    dose = r.quantity(first.get("doseQuantity"), f"{path}.doseAndRate.doseQuantity")
    timing = r.obj(item.get("timing"), f"{path}.timing") or {}
    repeat_raw = r.obj(timing.get("repeat"), f"{path}.timing.repeat")
    repeat = None
    if repeat_raw is not None:
        where = f"{path}.timing.repeat"
        repeat = Repeat(
            frequency=r.number(repeat_raw.get("frequency"), f"{where}.frequency"),
            period=r.number(repeat_raw.get("period"), f"{where}.period"),
            period_unit=r.code(repeat_raw.get("periodUnit"), f"{where}.periodUnit"),
            count=r.integer(repeat_raw.get("count"), f"{where}.count"),
            bounds=r.quantity(repeat_raw.get("boundsDuration"), f"{where}.boundsDuration"),
        )
    return Dosage(route, dose, dose is None and "doseRange" in first, repeat)


def read_medication(
    raw: Mapping[str, Any], r: Reader, medications: Mapping[str, Mapping[str, Any]]
) -> tuple[Concept | None, str | None, str | None, dict[str, Malformed]]:
    """(its coded medication, the reference, the reference's display, what was malformed by
    element: medicationCodeableConcept, medicationReference) of a medication resource. A
    reference is followed to a contained Medication or one of ``medications``. The two elements
    are read apart, so a fault in one keeps the other; a malformed coded medication is kept as
    its texts, for recognising immune globulin by name (an order must not go unchecked for a
    bad coding)."""
    problems: dict[str, Malformed] = {}
    value = raw.get("medicationCodeableConcept")
    try:
        concept = r.concept(value, "medicationCodeableConcept")
    except Malformed as exc:
        problems["medicationCodeableConcept"] = exc
        texts = _texts_of(value)
        concept = Concept((), "; ".join(texts)) if texts else None
    try:
        target, display = r.reference_to(raw.get("medicationReference"), "medicationReference")
        if concept is None and target:
            concept = _referenced(raw, target, r, medications)
    except Malformed as exc:  # the reference, or the Medication it points to
        target, display = None, None
        problems["medicationReference"] = exc
    return concept, target, display, problems


def _texts_of(value: Any) -> tuple[str, ...]:
    """The strings a malformed CodeableConcept still holds: itself if a string, its text, and
    the displays of its codings."""
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if not isinstance(value, dict):
        return ()
    codings = value.get("coding")
    items = [value.get("text")] + [
        coding.get("display")
        for coding in (codings if isinstance(codings, list) else [codings])
        if isinstance(coding, dict)
    ]
    return tuple(item for item in items if isinstance(item, str) and item.strip())


def read_medication_order(
    raw: Mapping[str, Any], r: Reader, medications: Mapping[str, Mapping[str, Any]]
) -> MedicationOrder:
    """A MedicationRequest or MedicationStatement; ``medications``: Medication resources by
    reference (``Medication/id``), besides the order's contained ones."""
    unreadable: dict[str, str] = {}

    def part(name: str, read: Callable[[], T], default: T) -> T:
        try:
            return read()
        except Malformed as exc:
            unreadable[name] = f"{exc.path} {exc.why}"
            return default

    kind = str(raw.get("resourceType"))
    request = kind == "MedicationRequest"
    status = part("status", lambda: r.code(raw.get("status"), "status"), None)
    when = "authoredOn" if request else "effectiveDateTime"
    authored = part(when, lambda: r.date(raw.get(when), when), None)
    concept, target, display, problems = read_medication(raw, r, medications)
    unreadable.update({element: f"{e.path} {e.why}" for element, e in problems.items()})
    dosage_key = "dosageInstruction" if request else "dosage"
    no_dosages: tuple[Dosage, ...] = ()
    dosages = part(
        dosage_key,
        lambda: tuple(
            _dosage(item, r, dosage_key) for item in r.objects(raw.get(dosage_key), dosage_key)
        ),
        no_dosages,
    )
    supply: Quantity | None = part(
        "dispenseRequest",
        lambda: r.quantity(
            (r.obj(raw.get("dispenseRequest"), "dispenseRequest") or {}).get(
                "expectedSupplyDuration"
            ),
            "dispenseRequest.expectedSupplyDuration",
        ),
        None,
    )
    schedule = Schedule()
    if dosage_key not in unreadable:  # a malformed dosage is named once, under its own key
        schedule = part("timing", lambda: _schedule(raw, r, dosage_key), schedule)
    no_concepts: tuple[Concept, ...] = ()
    reasons = part(
        "reasonCode", lambda: r.concepts(raw.get("reasonCode"), "reasonCode"), no_concepts
    )
    no_references: tuple[str, ...] = ()
    references = part(
        "reasonReference",
        lambda: tuple(
            ref
            for item in r.objects(raw.get("reasonReference"), "reasonReference")
            if (ref := r.text(item.get("reference"), "reasonReference.reference"))
        ),
        no_references,
    )
    return MedicationOrder(
        reference=r.reference,
        resource_type=kind,
        status=status,
        authored=authored,
        medication=concept,
        medication_reference=target,
        medication_display=display,
        dosages=dosages,
        supply_duration=supply,
        reason_codes=reasons,
        reason_references=references,
        raw=raw,
        unreadable=unreadable,
        schedule=schedule,
        strength_g_per_ml=_strength(raw, target, medications) if target else None,
    )


def _schedule(raw: Mapping[str, Any], r: Reader, dosage_key: str) -> Schedule:
    """The dates of an order's administrations: every ``timing.event``, the first instruction's
    ``timing.repeat.boundsPeriod``, and ``dispenseRequest.validityPeriod.start``."""
    events: list[date] = []
    bounds_start = bounds_end = None
    for index, item in enumerate(r.objects(raw.get(dosage_key), dosage_key)):
        timing = r.obj(item.get("timing"), f"{dosage_key}.timing") or {}
        event = timing.get("event")
        values = event if isinstance(event, list) else [] if event is None else [event]
        events += [day for value in values if (day := r.date(value, f"{dosage_key}.timing.event"))]
        if index == 0:
            repeat = r.obj(timing.get("repeat"), f"{dosage_key}.timing.repeat") or {}
            where = f"{dosage_key}.timing.repeat.boundsPeriod"
            period = r.obj(repeat.get("boundsPeriod"), where) or {}
            bounds_start = r.date(period.get("start"), f"{where}.start")
            bounds_end = r.date(period.get("end"), f"{where}.end")
    # A malformed dispenseRequest is already named under its own key.
    found = raw.get("dispenseRequest")
    dispense: Mapping[str, Any] = found if isinstance(found, dict) else {}
    where = "dispenseRequest.validityPeriod"
    validity = r.obj(dispense.get("validityPeriod"), where) or {}
    return Schedule(
        tuple(sorted(set(events))),
        bounds_start,
        bounds_end,
        r.date(validity.get("start"), f"{where}.start"),
    )


def _referenced(
    raw: Mapping[str, Any], target: str, r: Reader, medications: Mapping[str, Mapping[str, Any]]
) -> Concept | None:
    """The code of the Medication a reference points to: contained, or among ``medications``."""
    medication: Mapping[str, Any] | None = None
    if target.startswith("#"):
        contained = r.objects(raw.get("contained"), "contained")
        medication = next((c for c in contained if f"#{c.get('id')}" == target), None)
    else:
        medication = medications.get(target)
    if medication is None:
        return None
    return r.concept(medication.get("code"), "medicationReference (the Medication's code)")


GRAMS = {"g": 1.0, "mg": 0.001}
PER_ML = {"ml": 1.0, "dl": 100.0, "l": 1000.0}


def _strength(
    raw: Mapping[str, Any], target: str, medications: Mapping[str, Mapping[str, Any]]
) -> float | None:
    """Grams per mL of the Medication a reference points to, from ``ingredient.strength``
    (a Ratio of g or mg to mL, dL or L). Read leniently: a strength that is missing, malformed,
    or not one value (two ingredients that disagree) is None, and a dose in mL then stays
    unreadable unless the product has a single concentration."""
    medication: Any = None
    if target.startswith("#"):
        contained = raw.get("contained")
        medication = next(
            (
                c
                for c in (contained if isinstance(contained, list) else [])
                if isinstance(c, dict) and f"#{c.get('id')}" == target
            ),
            None,
        )
    else:
        medication = medications.get(target)
    ingredients = medication.get("ingredient") if isinstance(medication, Mapping) else None
    values: set[float | None] = {
        _g_per_ml(item.get("strength"))
        for item in (ingredients if isinstance(ingredients, list) else [])
        if isinstance(item, dict) and item.get("isActive") is not False and "strength" in item
    }
    value = values.pop() if len(values) == 1 else None
    return value if value is not None and 0 < value < math.inf else None


def _g_per_ml(ratio: Any) -> float | None:
    """A Ratio of g or mg to mL, dL or L, in g/mL; None for anything else."""
    if not isinstance(ratio, dict):
        return None
    numbers: list[float] = []
    for key, units in (("numerator", GRAMS), ("denominator", PER_ML)):
        part = ratio.get(key)
        if not isinstance(part, dict):
            return None
        value, unit = part.get("value"), str(part.get("code") or part.get("unit") or "")
        factor = units.get(unit.strip().lower())
        if isinstance(value, bool) or not isinstance(value, int | float) or factor is None:
            return None
        if not value > 0:
            return None
        numbers.append(value * factor)
    return round(numbers[0] / numbers[1], 6)


def medication_concept(concept: Concept | None, display: str | None) -> Concept | None:
    """What an order names: its coded medication, else the reference's display."""
    if concept is not None:
        return concept
    if display:
        return Concept((), display)
    return None


def recognise(order: MedicationOrder, kb: KnowledgeBase) -> IgOrder | None:
    """The order as an immune globulin order, or None when it names no immune globulin."""
    concept = medication_concept(order.medication, order.medication_display)
    if concept is None:
        return None
    identified = kb.catalogue.identify(concept.codes, concept.texts)
    if identified is None:
        return None
    codes = concept.codes
    label = concept.label or (codes[0].display or codes[0].label() if codes else "")
    route, basis, assumed = _route(order, identified.product, identified.code_route, kb)
    return IgOrder(order, identified.product, label, identified.matched_by, route, basis, assumed)


def _route(
    order: MedicationOrder, product: Any, code_route: str | None, kb: KnowledgeBase
) -> tuple[Route, str, bool]:
    """The route, why, and whether it was assumed (no route given or readable, and no single
    labelled route or ATC class to take it from)."""
    for dosage in order.dosages:
        if dosage.route is None:
            continue
        for code in dosage.route.codes:
            route = kb.route_codes.get((code.system, code.code))
            if route:
                return _as_route(route), f"ordered route ({code.label()})", False
        for name, pattern in kb.route_phrases.items():
            if any(pattern.search(text) for text in dosage.route.texts):
                return (
                    _as_route(name),
                    f"ordered route ('{record(dosage.route.texts[0])}')",
                    False,
                )
    if code_route:
        return _as_route(code_route), "route of the ordered ATC class", False
    if product is not None and len(product.routes) == 1:
        return product.routes[0], f"labelled route of {product.brand}", False
    unread = next((why for key, why in order.unreadable.items() if key.startswith("dosage")), None)
    given = f"the route could not be read ({record(unread)})" if unread else "no route on the order"
    labelled = f"{product.brand} is labelled {' and '.join(product.routes)}; " if product else ""
    return "IV", f"{given} ({labelled}assumed IV so the IV checks run)", True


def _as_route(value: str) -> Route:
    return "SC" if value == "SC" else "IV"
