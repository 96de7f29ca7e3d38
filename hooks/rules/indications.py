"""Which indications an order is for: its ``reasonCode`` / ``reasonReference``; without one, every
active condition of the patient that is an indication (contract §6 "Dose")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.record import PatientRecord, codes_of_json
from hooks.terminology import ConceptSet


@dataclass(frozen=True)
class FoundIndication:
    valueset: str
    evidence: str
    from_order: bool


def indications_of(
    order: dict[str, Any], record: PatientRecord, valuesets: dict[str, ConceptSet], wanted: set[str]
) -> list[FoundIndication]:
    """Indications among ``wanted`` value sets: from the order's reason, else active conditions."""
    found: list[FoundIndication] = []
    for reason in order.get("reasonCode") or []:
        codes, texts = codes_of_json(reason)
        for name in sorted(wanted):
            matched = valuesets[name].match(codes, texts)
            if matched:
                found.append(
                    FoundIndication(
                        name,
                        f"{texts[0] if texts else matched.describe()} (reasonCode, "
                        f"{matched.describe()})",
                        True,
                    )
                )
    conditions = {c.reference: c for c in record.conditions}
    for reason in order.get("reasonReference") or []:
        condition = conditions.get(str((reason or {}).get("reference", "")))
        for name in sorted(wanted):
            matched = (
                valuesets[name].match(condition.codes, [condition.label]) if condition else None
            )
            if matched and condition:
                found.append(
                    FoundIndication(
                        name,
                        f"{condition.reference}: {condition.label} (reasonReference, "
                        f"{matched.describe()})",
                        True,
                    )
                )
    if found or order.get("reasonCode") or order.get("reasonReference"):
        return found
    for condition in record.conditions:
        if not condition.active:
            continue
        for name in sorted(wanted):
            matched = valuesets[name].match(condition.codes, [condition.label])
            if matched:
                found.append(
                    FoundIndication(
                        name,
                        f"{condition.reference}: {condition.label} (active condition, "
                        f"{matched.describe()})",
                        False,
                    )
                )
    return found
