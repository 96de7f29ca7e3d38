"""Read the ordered immune globulin dose and compute per-kg and course figures (contract §6 "Dose").

One administration is ``doseAndRate.doseQuantity`` (g or mg; g/kg or mg/kg times the actual weight;
mL times the product's concentration, contract §8 "Dose reading": only for a product made in one
concentration, or a Medication whose ``ingredient.strength`` says it, else unreadable).
From ``timing.repeat``: a daily regimen (period of a day or less) holds ``count`` administrations,
else as many as fit in ``boundsDuration``, else in ``dispenseRequest.expectedSupplyDuration``, else
one day's worth; the course total is their sum. An interval regimen (period of a week or more) is
one cycle per administration, compared per cycle; a supply duration never multiplies it. Every step
is written out, so a pharmacist can check the arithmetic. A dose that cannot be read says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hooks.context.model import IgOrder, MedicationOrder, ObservationEntry, Repeat
from hooks.context.read import Quantity
from hooks.evidence import plain_number
from hooks.knowledge_base.schema import Product
from hooks.text import record

DAYS_PER_UNIT = {"h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
DURATION_WORDS = {"day": "d", "days": "d", "week": "wk", "weeks": "wk", "hours": "h"}
DOSE_UNITS = {  # normalised unit -> (grams per unit, per kg of body weight)
    "g": (1.0, False),
    "mg": (0.001, False),
    "g/kg": (1.0, True),
    "mg/kg": (0.001, True),
}


@dataclass(frozen=True)
class Dose:
    per_kg: bool  # ordered per kg of body weight
    admin_g: float | None  # grams per administration (None: per-kg dose and no weight)
    admin_g_per_kg: float | None  # g/kg per administration (None: absolute dose and no weight)
    regimen: Literal["daily", "interval", "single"]
    administrations: int  # in the course; 1 for an interval regimen (one cycle)
    interval_days: float | None  # days between administrations of an interval regimen
    course_g: float | None
    course_g_per_kg: float | None
    weight_kg: float | None
    steps: tuple[str, ...]  # the arithmetic, in words
    volume_ml: float | None = None  # the ordered volume per administration, for a dose in mL

    @property
    def compared_g_per_kg(self) -> float | None:
        """What a range is compared with: the course total (daily), the cycle dose (interval)."""
        return self.admin_g_per_kg if self.regimen == "interval" else self.course_g_per_kg

    def at_least(self, g_per_kg: float) -> bool:
        return self.course_g_per_kg is not None and self.course_g_per_kg >= g_per_kg


@dataclass(frozen=True)
class UnreadableDose:
    reason: str


@dataclass(frozen=True)
class Strength:
    """Grams of immune globulin per mL of an order's product, and where that comes from."""

    g_per_ml: float
    source: str  # "Privigen is 10%, 100 mg/mL"


def percent(g_per_ml: float) -> str:
    return f"{plain_number(g_per_ml * 100)}%"


def product_strength(product: Product | None) -> Strength | None:
    """The product's one concentration (``products.json`` ``concentration_percent``), if any."""
    if product is None or product.concentration_percent is None:
        return None
    g_per_ml = product.concentration_percent / 100
    return Strength(
        g_per_ml, f"{product.brand} is {percent(g_per_ml)}, {plain_number(g_per_ml * 1000)} mg/mL"
    )


def strength_of(order: IgOrder) -> Strength | str:
    """What a dose in mL of this order holds per mL, or why that is not known: the Medication's
    ``ingredient.strength``, else the product's one concentration. A stated strength the
    product is not made in is a contradiction, not a choice."""
    stated, product = order.order.strength_g_per_ml, order.product
    labelled = product_strength(product)
    if stated is not None:
        if labelled is not None and abs(stated - labelled.g_per_ml) > 1e-9:
            return (
                f"the Medication's ingredient.strength ({percent(stated)}) is not the product's "
                f"concentration ({labelled.source})"
            )
        return Strength(
            stated, f"Medication ingredient.strength {plain_number(stated * 1000)} mg/mL"
        )
    if labelled is not None:
        return labelled
    if product is None:
        return "the product is not identified and its Medication gives no ingredient.strength"
    return (
        f"no single concentration is on file for {product.brand} (made in more than one, or "
        "not stated), and its Medication gives no ingredient.strength"
    )


def _days(quantity: Quantity | None) -> float | None:
    if quantity is None:
        return None
    unit = (quantity.code or quantity.unit or "").strip().lower()
    factor = DAYS_PER_UNIT.get(DURATION_WORDS.get(unit, unit))
    return quantity.value * factor if factor else None


def _administrations(order: MedicationOrder, repeat: Repeat, period_days: float) -> tuple[int, str]:
    frequency = repeat.frequency or 1
    if repeat.count:
        return repeat.count, f"timing.repeat.count {repeat.count}"
    per_day = frequency / period_days
    bounds = _days(repeat.bounds)
    if bounds:
        return max(
            1, round(per_day * bounds)
        ), f"{plain_number(per_day)} a day for {plain_number(bounds)} days (boundsDuration)"
    supply = _days(order.supply_duration)
    if supply:
        return max(
            1, round(per_day * supply)
        ), f"{plain_number(per_day)} a day for {plain_number(supply)} days (expectedSupplyDuration)"
    return max(1, round(per_day)), "one day's worth (no count, bounds or supply duration)"


def _per_administration(
    quantity: Quantity, weight: ObservationEntry | None, strength: Strength | str | None
) -> tuple[bool, float | None, float | None, str] | UnreadableDose:
    unit = unit_of(quantity)
    shown = f"{plain_number(quantity.value)} {record(quantity.unit) if quantity.unit else unit}"
    if unit == "ml":
        if not isinstance(strength, Strength):
            why = strength or "the product's concentration is not known"
            return UnreadableDose(f"the dose cannot be read: it is a volume ({shown}) and {why}")
        grams, per_kg = strength.g_per_ml, False
        shown = (
            f"{shown} × {plain_number(strength.g_per_ml)} g/mL ({strength.source}) = "
            f"{plain_number(quantity.value * grams)} g"
        )
    elif unit not in DOSE_UNITS:
        return UnreadableDose(
            f"the dose cannot be read: unit '{record(quantity.unit or quantity.code or '')}' is "
            f"not g, mg, g/kg or mg/kg"
        )
    else:
        grams, per_kg = DOSE_UNITS[unit]
    value = quantity.value * grams
    kg = weight.value if weight is not None else None
    source = f"({record(weight.reference)}, {weight.date})" if weight is not None else ""
    if per_kg:
        admin_g = value * kg if kg else None
        step = (
            f"Per administration: {shown} × {plain_number(kg)} kg {_basis(weight)} {source} = "
            f"{plain_number(admin_g)} g"
            if kg and admin_g is not None
            else f"Per administration: {shown} (no recent weight: grams unknown)"
        )
        return True, admin_g, value, step
    per_kg_value = value / kg if kg else None
    grams_shown = "" if unit == "ml" else f" = {plain_number(value)} g"
    step = (
        f"Per administration: {shown}{grams_shown} ÷ {plain_number(kg)} kg "
        f"{_basis(weight)} {source} = {plain_number(per_kg_value)} g/kg"
        if kg and per_kg_value is not None
        else f"Per administration: {shown} (no recent weight: g/kg unknown)"
    )
    return False, value, per_kg_value, step


def _basis(weight: ObservationEntry | None) -> str:
    adjusted = weight is not None and weight.concept == "adjusted-body-weight"
    return "adjusted body weight" if adjusted else "actual weight"


def read_dose(
    order: MedicationOrder, weight: ObservationEntry | None, strength: Strength | str | None = None
) -> Dose | UnreadableDose:
    """The dose of the first dosage instruction of a MedicationRequest, with its arithmetic;
    ``strength`` (:func:`strength_of`) reads a dose in mL, or says why it cannot be read."""
    unread = order.unreadable.get("dosageInstruction") or order.unreadable.get("dosage")
    if unread:
        return UnreadableDose(f"the dose cannot be read: {unread}")
    dosage = order.dosages[0] if order.dosages else None
    if dosage is None or dosage.dose is None:
        why = (
            "it is a dose range, not one dose"
            if dosage is not None and dosage.dose_is_range
            else "it has no dose quantity"
        )
        return UnreadableDose(f"the dose cannot be read: {why}")
    administered = _per_administration(dosage.dose, weight, strength)
    if isinstance(administered, UnreadableDose):
        return administered
    per_kg, admin_g, admin_g_per_kg, first_step = administered
    steps = [first_step]
    repeat = dosage.repeat or Repeat(None, None, None, None, None)
    period_days = (
        _days(Quantity(repeat.period, repeat.period_unit, None, None)) if repeat.period else None
    )
    # Hostile-input fix (tests/test_property_rules.py): a negative period, or one so small it
    # underflows to 0 days or gives infinitely many administrations, raised ZeroDivisionError or
    # OverflowError (a 500); it is now an unreadable dose, said so.
    if period_days is not None and not (
        0 < period_days < math.inf and math.isfinite((repeat.frequency or 1) / period_days)
    ):
        return UnreadableDose("the dose cannot be read: timing.repeat.period is out of range")
    if period_days is None:
        regimen: Literal["daily", "interval", "single"] = "single"
        count, interval = repeat.count or 1, None
        how = "a single administration (no timing.repeat period)"
    elif period_days >= 7:
        regimen, count = "interval", 1
        interval = period_days / (repeat.frequency or 1)
        how = (
            f"one cycle every {plain_number(interval)} days; compared per cycle (supply "
            f"duration not counted)"
        )
    else:
        regimen, interval = "daily", None
        try:
            count, how = _administrations(order, repeat, period_days)
        except (OverflowError, ValueError):  # hostile-input fix: a huge duration
            return UnreadableDose("the dose cannot be read: its course duration is out of range")
    if count < 1:
        return UnreadableDose("the dose cannot be read: timing.repeat.count is below 1")
    steps.append(
        f"Regimen: {regimen}, {count} administration{'s' if count != 1 else ''} in the course: "
        f"{how}"
    )
    # Rounded to a microgram per kg so 0.4 × 5 is 2, not 1.9999999999999998.
    course_g = round(admin_g * count, 6) if admin_g is not None else None
    course_g_per_kg = round(admin_g_per_kg * count, 6) if admin_g_per_kg is not None else None
    if regimen != "interval":
        total = " = ".join(
            part
            for part in (
                f"{plain_number(course_g)} g" if course_g is not None else "",
                f"{plain_number(course_g_per_kg)} g/kg" if course_g_per_kg is not None else "",
            )
            if part
        )
        steps.append(f"Course total: {count} × per administration = {total or 'unknown'}")
    # Hostile-input fix: a huge dose, weight or count gave infinite figures (a card read
    # "inf g/kg" and compared inf with the ranges); such figures are not a readable dose.
    figures = (admin_g, admin_g_per_kg, course_g, course_g_per_kg, interval)
    if not all(math.isfinite(figure) for figure in figures if figure is not None):
        return UnreadableDose("the dose cannot be read: its amount or timing is out of range")
    return Dose(
        per_kg,
        admin_g,
        admin_g_per_kg,
        regimen,
        count,
        interval,
        course_g,
        course_g_per_kg,
        weight.value if weight is not None else None,
        tuple(steps),
        dosage.dose.value if unit_of(dosage.dose) == "ml" else None,
    )


def unit_of(quantity: Quantity) -> str:
    return (quantity.code or quantity.unit or "").replace(" ", "").lower()
