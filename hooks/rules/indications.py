"""Which indications an order is for: its ``reasonCode`` / ``reasonReference``; without one, every
active condition of the patient that is an indication (contract §6 "Dose")."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from hooks.context.model import ClinicalContext, MedicationOrder
from hooks.terminology import ConceptSet
from hooks.text import record


@dataclass(frozen=True)
class FoundIndication:
    valueset: str
    evidence: str
    from_order: bool


def indications_of(
    order: MedicationOrder,
    ctx: ClinicalContext,
    valuesets: Mapping[str, ConceptSet],
    wanted: Collection[str],
) -> list[FoundIndication]:
    """Indications among ``wanted`` value sets: from the order's reason, else active conditions."""
    found: list[FoundIndication] = []
    names = sorted(wanted)
    for reason in order.reason_codes:
        for name in names:
            matched = valuesets[name].match(reason.codes, reason.texts)
            if matched:
                shown = record(reason.texts[0]) if reason.texts else matched.describe()
                found.append(
                    FoundIndication(name, f"{shown} (reasonCode, {matched.describe()})", True)
                )
    conditions = (
        ctx.derived("conditions-by-reference", lambda: {c.reference: c for c in ctx.conditions})
        if order.reason_references
        else {}
    )
    for reference in order.reason_references:
        condition = conditions.get(reference)
        if condition is None:
            continue
        for name in names:
            matched = ctx.match(condition, valuesets[name])
            if matched:
                found.append(
                    FoundIndication(
                        name,
                        f"{record(condition.reference)}: {record(condition.label)} "
                        "(reasonReference, "
                        f"{matched.describe()})",
                        True,
                    )
                )
    if found or order.has_reason:
        return found
    # The same for every order without a reason: found once per call (200 orders of a patient
    # with 5,000 conditions once took 43 s here).
    return list(
        ctx.derived_with(
            ("active-indications", tuple(names)),
            (valuesets,),
            lambda: _active(ctx, valuesets, names),
        )
    )


def _active(
    ctx: ClinicalContext, valuesets: Mapping[str, ConceptSet], names: list[str]
) -> list[FoundIndication]:
    found = []
    for condition in ctx.conditions:
        if not condition.active:
            continue
        for name in names:
            matched = ctx.match(condition, valuesets[name])
            if matched:
                found.append(
                    FoundIndication(
                        name,
                        f"{record(condition.reference)}: {record(condition.label)} "
                        "(active condition, "
                        f"{matched.describe()})",
                        False,
                    )
                )
    return found
