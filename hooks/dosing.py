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
from typing import Any, Literal

from hooks.record import ObservationEntry, plain_number

DAYS_PER_UNIT = {"h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
DOSE_UNITS = {  # normalised unit -> (grams per unit, per kg of body weight)
    "g": (1.0, False),
    "mg": (0.001, False),
    "g/kg": (1.0, True),
    "mg/kg": (0.001, True),
}
HIGH_DOSE_G_PER_KG = 2.0  # labels: hemolysis and aseptic meningitis are more frequent from 2 g/kg


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

    @property
    def high_dose(self) -> bool:
        return self.course_g_per_kg is not None and self.course_g_per_kg >= HIGH_DOSE_G_PER_KG


@dataclass(frozen=True)
class UnreadableDose:
    reason: str


def _days(quantity: Any) -> float | None:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip().lower()
    unit = {"day": "d", "days": "d", "week": "wk", "weeks": "wk", "hours": "h"}.get(unit, unit)
    factor = DAYS_PER_UNIT.get(unit)
    return float(quantity["value"]) * factor if factor else None


def _administrations(
    order: dict[str, Any], repeat: dict[str, Any], period_days: float
) -> tuple[int, str]:
    frequency = float(repeat.get("frequency") or 1)
    if repeat.get("count"):
        return int(repeat["count"]), f"timing.repeat.count {repeat['count']}"
    per_day = frequency / period_days
    bounds = _days(repeat.get("boundsDuration"))
    if bounds:
        return max(
            1, round(per_day * bounds)
        ), f"{plain_number(per_day)} a day for {plain_number(bounds)} days (boundsDuration)"
    supply = _days((order.get("dispenseRequest") or {}).get("expectedSupplyDuration"))
    if supply:
        return max(
            1, round(per_day * supply)
        ), f"{plain_number(per_day)} a day for {plain_number(supply)} days (expectedSupplyDuration)"
    return max(1, round(per_day)), "one day's worth (no count, bounds or supply duration)"


def read_dose(order: dict[str, Any], weight: ObservationEntry | None) -> Dose | UnreadableDose:
    """The dose of the first dosage instruction of a MedicationRequest, with its arithmetic."""
    dosages = order.get("dosageInstruction") or []
    dosage = dosages[0] if dosages and isinstance(dosages[0], dict) else {}
    rates = dosage.get("doseAndRate") or []
    quantity = (
        (rates[0] or {}).get("doseQuantity") if rates and isinstance(rates[0], dict) else None
    )
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        ranged = rates and isinstance(rates[0], dict) and "doseRange" in rates[0]
        why = "it is a dose range, not one dose" if ranged else "it has no dose quantity"
        return UnreadableDose(f"the dose cannot be read: {why}")
    unit = str(quantity.get("code") or quantity.get("unit") or "").replace(" ", "").lower()
    if unit not in DOSE_UNITS:
        return UnreadableDose(
            f"the dose cannot be read: unit {quantity.get('unit') or quantity.get('code')!r} is "
            f"not g, mg, g/kg or mg/kg"
        )
    grams, per_kg = DOSE_UNITS[unit]
    value = float(quantity["value"]) * grams
    kg = weight.value if weight is not None else None
    shown = f"{plain_number(float(quantity['value']))} {quantity.get('unit') or unit}"
    steps: list[str] = []
    if per_kg:
        admin_g_per_kg, admin_g = value, (value * kg if kg else None)
        steps.append(
            f"Per administration: {shown} × {plain_number(kg)} kg actual weight "
            f"({weight.reference}, {weight.date}) = {plain_number(admin_g)} g"  # type: ignore[union-attr]
            if kg
            else f"Per administration: {shown} (no recent weight: grams unknown)"
        )
    else:
        admin_g, admin_g_per_kg = value, (value / kg if kg else None)
        steps.append(
            f"Per administration: {shown} = {plain_number(admin_g)} g ÷ {plain_number(kg)} kg "
            f"({weight.reference}, {weight.date}) = {plain_number(admin_g_per_kg)} g/kg"  # type: ignore[union-attr,arg-type]
            if kg
            else f"Per administration: {shown} (no recent weight: g/kg unknown)"
        )
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    period_days = (
        _days({"value": repeat.get("period"), "unit": repeat.get("periodUnit")})
        if repeat.get("period")
        else None
    )
    # Hostile-input fix (tests/test_property_rules.py): a negative period, or one so small it
    # underflows to 0 days or gives infinitely many administrations, raised ZeroDivisionError or
    # OverflowError (a 500); it is now an unreadable dose, said so.
    if period_days is not None and not (
        0 < period_days < math.inf
        and math.isfinite(float(repeat.get("frequency") or 1) / period_days)
    ):
        return UnreadableDose("the dose cannot be read: timing.repeat.period is out of range")
    if period_days is None:
        regimen, count, interval, how = (
            "single",
            int(repeat.get("count") or 1),
            None,
            "a single administration (no timing.repeat period)",
        )
    elif period_days >= 7:
        frequency = float(repeat.get("frequency") or 1)
        regimen, count, interval = "interval", 1, period_days / frequency
        how = (
            f"one cycle every {plain_number(interval)} days; compared per cycle (supply "
            f"duration not counted)"
        )
    else:
        regimen, interval = "daily", None
        try:
            count, how = _administrations(order, repeat, period_days)
        except OverflowError:  # hostile-input fix: a huge boundsDuration or supply duration
            return UnreadableDose("the dose cannot be read: its course duration is out of range")
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
        kg,
        tuple(steps),
    )
