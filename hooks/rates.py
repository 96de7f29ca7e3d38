"""Infusion rates of an immune globulin order, in mg/kg/min for this patient (card contract §8
"Rate").

An order states its rate in ``dosageInstruction.doseAndRate`` as ``rateQuantity``, ``rateRange``
or ``rateRatio``, in mg/kg/min (the labels' unit), in mL/kg/min or mL/kg/h, or in mL/h or mL/min.
A volume rate is converted with the product's concentration (a 10% product holds 100 mg/mL), a
rate not per kg with the dosing weight: 8 mg/kg/min × 70 kg = 560 mg/min = 33.6 g/h, which is
336 mL/h of a 10% product. A rate in a unit not listed here, or one that needs a weight or a
concentration the service does not have, is not converted (and not compared).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# unit -> (volume: the value is mL, not mg; per kg; minutes per unit of time)
UNITS: Mapping[str, tuple[bool, bool, float]] = {
    "mg/kg/min": (False, True, 1),
    "mg/kg/h": (False, True, 60),
    "ml/kg/min": (True, True, 1),
    "ml/kg/h": (True, True, 60),
    "ml/h": (True, False, 60),
    "ml/min": (True, False, 1),
}


@dataclass(frozen=True)
class Conversion:
    """What converts a rate for this patient: the dosing weight and the product's mg/mL."""

    kg: float | None
    mg_per_ml: float | None

    def mg_kg_min(self, value: float, unit: str) -> float | None:
        """``value`` in ``unit`` as mg/kg/min, or None when it cannot be converted."""
        spec = UNITS.get(_normal(unit))
        if spec is None:
            return None
        volume, per_kg, minutes = spec
        result = value / minutes
        if volume:
            if not self.mg_per_ml:
                return None
            result *= self.mg_per_ml
        if not per_kg:
            if not self.kg:
                return None
            result /= self.kg
        return result

    def from_steps(self, value: float, unit: str) -> str:
        """The arithmetic that brings ``value`` ``unit`` to mg/kg/min (the unit as written is
        the caller's to show: it is record text)."""
        spec = UNITS.get(_normal(unit))
        result = self.mg_kg_min(value, unit)
        if spec is None or result is None:
            return ""
        volume, per_kg, minutes = spec
        parts = [number(value, 2)]
        if volume and self.mg_per_ml:
            parts.append(f"× {number(self.mg_per_ml, 0)} mg/mL")
        if minutes != 1:
            parts.append(f"÷ {minutes:g} min/h")
        if not per_kg and self.kg:
            parts.append(f"÷ {number(self.kg, 2)} kg")
        return f"{' '.join(parts)} = {number(result, 2)} mg/kg/min"

    def ml_h(self, mg_kg_min: float) -> float | None:
        """A rate in mg/kg/min as mL/h of the product for this patient."""
        if not self.kg or not self.mg_per_ml:
            return None
        return mg_kg_min * self.kg * 60 / self.mg_per_ml

    def shown(self, mg_kg_min: float) -> str:
        """ "8 mg/kg/min (336 mL/h)": every rate on a card in both units where it can be."""
        ml_h = self.ml_h(mg_kg_min)
        volume = f" ({number(ml_h, 1)} mL/h)" if ml_h is not None else ""
        return f"{number(mg_kg_min, 2)} mg/kg/min{volume}"

    def steps(self, mg_kg_min: float, concentration_percent: float | None) -> str:
        """The arithmetic of a rate in mL/h, written out."""
        if not self.kg or not self.mg_per_ml:
            return (
                f"{number(mg_kg_min, 2)} mg/kg/min (no mL/h: "
                + ("no usable body weight" if not self.kg else "the concentration is not known")
                + ")"
            )
        mg_min = mg_kg_min * self.kg
        percent = f"{concentration_percent:g}% " if concentration_percent else ""
        return (
            f"{number(mg_kg_min, 2)} mg/kg/min × {number(self.kg, 2)} kg = "
            f"{number(mg_min, 1)} mg/min = {number(mg_min * 60 / 1000, 2)} g/h = "
            f"{number(mg_min * 60 / self.mg_per_ml, 1)} mL/h of the {percent}product "
            f"({number(self.mg_per_ml, 0)} mg/mL)"
        )


@dataclass(frozen=True)
class OrderedRate:
    """One rate the order states: its value and unit as written, and where."""

    value: float
    unit: str
    where: str  # rateQuantity, rateRange.low, rateRange.high, rateRatio

    @property
    def written(self) -> str:
        return f"{number(self.value, 2)} {self.unit}"


def mg_per_ml(concentration_percent: float | None) -> float | None:
    """A 10% solution holds 10 g per 100 mL: 100 mg/mL."""
    return concentration_percent * 10 if concentration_percent else None


def ordered_rates(raw: Mapping[str, Any]) -> list[OrderedRate]:
    """Every rate of every ``doseAndRate`` of the order (lone objects read as lists)."""
    return [rate for item in dose_and_rates(raw) for rate in rates_of(item)]


def dose_and_rates(raw: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for dosage in _as_list(raw.get("dosageInstruction")):
        if isinstance(dosage, dict):
            for item in _as_list(dosage.get("doseAndRate")):
                if isinstance(item, dict):
                    yield item


def rates_of(item: Mapping[str, Any]) -> list[OrderedRate]:
    """The rates of one ``doseAndRate``."""
    found: list[OrderedRate] = []
    quantity = _quantity(item.get("rateQuantity"))
    if quantity is not None:
        found.append(OrderedRate(*quantity, "rateQuantity"))
    span = item.get("rateRange")
    if isinstance(span, dict):
        for end in ("low", "high"):
            value = _quantity(span.get(end))
            if value is not None:
                found.append(OrderedRate(*value, f"rateRange.{end}"))
    ratio = item.get("rateRatio")
    if isinstance(ratio, dict):
        top, bottom = _quantity(ratio.get("numerator")), _quantity(ratio.get("denominator"), 1)
        if top is not None and bottom is not None and bottom[0] > 0:
            found.append(OrderedRate(top[0] / bottom[0], f"{top[1]}/{bottom[1]}", "rateRatio"))
    return found


def volume_unit(unit: str) -> bool:
    """Whether a rate in ``unit`` is a volume (mL) per time, which depends on the concentration."""
    spec = UNITS.get(_normal(unit))
    return spec is not None and spec[0]


def floor2(value: float) -> float:
    """Rounded down to 0.01, so a rate written back is never above the one computed."""
    return math.floor(value * 100 + 1e-9) / 100


def number(value: float, places: int) -> str:
    rounded = round(value, places)
    return f"{rounded:.{places}f}".rstrip("0").rstrip(".") if places else f"{rounded:.0f}"


def _quantity(value: Any, default_value: float | None = None) -> tuple[float, str] | None:
    if not isinstance(value, dict):
        return None
    number_value = value.get("value", default_value)
    unit = value.get("code") or value.get("unit")
    if not isinstance(number_value, int | float) or isinstance(number_value, bool):
        return None
    if not isinstance(unit, str) or not unit.strip():
        return None
    return float(number_value), unit.strip()


def _normal(unit: str) -> str:
    return (
        unit.strip().lower().replace(" ", "").replace("hr", "h").replace("{", "").replace("}", "")
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
