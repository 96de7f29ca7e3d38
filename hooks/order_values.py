"""An immune globulin order written out value by value, for an EHR that fills a new order from
its own defaults (the Epic profile, contract §7.8): what to enter, not what changed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hooks.context.model import IgOrder
from hooks.findings import DoseChange, Instruction, OrderChange, ProductChange, RateCap
from hooks.rates import Conversion
from hooks.text import record


def entry_values(order: IgOrder, changes: Iterable[OrderChange]) -> str:
    """Product, dose, route, schedule, rate and instructions of the order as revised."""
    changes = tuple(changes)
    product = next((c.product.brand for c in changes if isinstance(c, ProductChange)), None)
    dose = next((c for c in changes if isinstance(c, DoseChange)), None)
    cap = next((c for c in changes if isinstance(c, RateCap)), None)
    parts = [product or order.product_name]
    if dose is not None:
        parts.append(f"dose {dose.shown()} per administration")
    elif (ordered := _ordered_dose(order)) is not None:
        parts.append(f"dose {ordered} per administration (as ordered)")
    parts.append(f"route {order.route}")
    schedule = _schedule(order, dose)
    if schedule:
        parts.append(schedule)
    if cap is not None:
        conversion = Conversion(cap.kg, cap.mg_per_ml)
        start = (
            f"start at {conversion.shown(cap.initial_mg_kg_min)}, then "
            if cap.initial_mg_kg_min is not None
            else ""
        )
        parts.append(
            f"rate: {start}up to {conversion.shown(cap.mg_kg_min)} (titrate to it, never above)"
        )
    elif (rate := _ordered_rate(order)) is not None:
        parts.append(f"rate {rate} (as ordered)")
    parts += [c.text for c in changes if isinstance(c, Instruction)]
    return "; ".join(parts)


def _ordered_dose(order: IgOrder) -> str | None:
    dose = order.order.dosages[0].dose if order.order.dosages else None
    if dose is None:
        return None
    return record(f"{dose.value:g} {dose.unit_shown}")


def _schedule(order: IgOrder, dose: DoseChange | None) -> str | None:
    if dose is not None and dose.every_weeks is not None:
        return f"every {dose.every_weeks:g} week(s)"
    repeat = order.order.dosages[0].repeat if order.order.dosages else None
    if repeat is None or repeat.period is None:
        return None
    unit = {"d": "day", "wk": "week", "mo": "month", "h": "hour"}.get(repeat.period_unit or "", "")
    every = f"every {repeat.period:g} {unit}{'s' if repeat.period != 1 else ''}".strip()
    times = f"{repeat.frequency:g} × " if repeat.frequency and repeat.frequency != 1 else ""
    count = f", {repeat.count} administrations" if repeat.count else ""
    return f"{times}{every}{count}"


def _ordered_rate(order: IgOrder) -> str | None:
    raw: Any = order.order.raw
    for dosage in raw.get("dosageInstruction") or []:
        if not isinstance(dosage, dict):
            continue
        for item in dosage.get("doseAndRate") or []:
            rate = item.get("rateQuantity") if isinstance(item, dict) else None
            if isinstance(rate, dict) and isinstance(rate.get("value"), int | float):
                return record(f"{rate['value']:g} {rate.get('code') or rate.get('unit') or ''}")
    return None
