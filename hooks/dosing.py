"""Read the ordered immune globulin dose and compute per-kg and course figures (contract §6 "Dose").

One administration is ``doseAndRate.doseQuantity`` (g or mg; g/kg or mg/kg times the actual weight).
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

from hooks.context.model import MedicationOrder, ObservationEntry, Repeat
from hooks.context.read import Quantity
from hooks.evidence import plain_number
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

    @property
    def compared_g_per_kg(self) -> float | None:
        """What a range is compared with: the course total (daily), the cycle dose (interval)."""
        return self.admin_g_per_kg if self.regimen == "interval" else self.course_g_per_kg

    def at_least(self, g_per_kg: float) -> bool:
        return self.course_g_per_kg is not None and self.course_g_per_kg >= g_per_kg


@dataclass(frozen=True)
class UnreadableDose:
    reason: str


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
    quantity: Quantity, weight: ObservationEntry | None
) -> tuple[bool, float | None, float | None, str] | UnreadableDose:
    unit = (quantity.code or quantity.unit or "").replace(" ", "").lower()
    if unit not in DOSE_UNITS:
        return UnreadableDose(
            f"the dose cannot be read: unit '{record(quantity.unit or quantity.code or '')}' is "
            f"not g, mg, g/kg or mg/kg"
        )
    grams, per_kg = DOSE_UNITS[unit]
    value = quantity.value * grams
    kg = weight.value if weight is not None else None
    shown = f"{plain_number(quantity.value)} {record(quantity.unit) if quantity.unit else unit}"
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
    step = (
        f"Per administration: {shown} = {plain_number(value)} g ÷ {plain_number(kg)} kg "
        f"{_basis(weight)} {source} = {plain_number(per_kg_value)} g/kg"
        if kg and per_kg_value is not None
        else f"Per administration: {shown} (no recent weight: g/kg unknown)"
    )
    return False, value, per_kg_value, step


def _basis(weight: ObservationEntry | None) -> str:
    adjusted = weight is not None and weight.concept == "adjusted-body-weight"
    return "adjusted body weight" if adjusted else "actual weight"


def read_dose(order: MedicationOrder, weight: ObservationEntry | None) -> Dose | UnreadableDose:
    """The dose of the first dosage instruction of a MedicationRequest, with its arithmetic."""
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
    administered = _per_administration(dosage.dose, weight)
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
    )
