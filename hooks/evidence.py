"""One line of evidence per record item: which resource, what it says, by which code, and when.

Every string the record supplies (ids, names, statuses, values as recorded) is marked with
``hooks.text.record`` here, so the card builder escapes it for the field it ends in; our own words
and the numbers we computed are not marked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hooks.terminology import Match
from hooks.text import record

if TYPE_CHECKING:
    from hooks.context.model import (
        AllergyEntry,
        ClinicalContext,
        ConditionEntry,
        MedicationEntry,
        ObservationEntry,
        UnusableObservation,
    )


def plain_number(value: float | None) -> str:
    """At most two decimals, no exponent, no trailing zeros: 1.7, 69.85, 1062.84."""
    if value is None:
        return "unknown"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def shown(entry: ObservationEntry) -> str:
    """The value in the concept's unit, and as recorded when that differs."""
    if entry.value is None:
        return record(entry.original)
    value = f"{entry.comparator or ''}{plain_number(entry.value)}"  # "<7 mg/dL"
    converted = f"{value} {entry.unit or ''}".strip()
    if entry.original == converted:
        return converted
    return f"{converted} (recorded {record(entry.original)})"


def condition(entry: ConditionEntry, matched: Match) -> str:
    status = (
        record(entry.clinical_status)
        if entry.clinical_status
        else "no clinical status (counted as active)"
    )
    when = f", {entry.date.isoformat()}" if entry.date else ""
    return (
        f"{record(entry.reference)}: {record(entry.label)} ({matched.describe()}), {status}{when}"
    )


def observation(entry: ObservationEntry) -> str:
    when = entry.date.isoformat() if entry.date else "no date"
    name = record(entry.label) if entry.label else entry.concept
    return f"{record(entry.reference)}: {name} {shown(entry)}, {when} ({record(entry.status)})"


def unusable(item: UnusableObservation) -> str:
    entry = item.entry
    when = entry.date.isoformat() if entry.date else "no date"
    name = record(entry.label) if entry.label else entry.concept
    value = f" {record(entry.original)}" if entry.original else ""
    return f"{record(entry.reference)}: {name}{value} on {when} not used: {item.reason}"


def medication(entry: MedicationEntry, matched: Match) -> str:
    return (
        f"{record(entry.reference)}: {record(entry.label)} ({matched.describe()}), "
        f"{record(entry.status)}"
    )


def allergy(entry: AllergyEntry, matched: Match) -> str:
    details = [
        f"criticality {record(entry.criticality)}"
        if entry.criticality
        else "criticality not stated"
    ]
    if entry.severe_reaction:
        details.append("a severe reaction")
    if entry.manifestation_labels:
        details.append("reaction: " + ", ".join(map(record, entry.manifestation_labels)))
    return (
        f"{record(entry.reference)}: {record(entry.label)} ({matched.describe()}); "
        f"{'; '.join(details)}"
    )


def age(ctx: ClinicalContext) -> str:
    born = ctx.patient.birth_date.isoformat() if ctx.patient.birth_date else "unknown"
    return (
        f"{record(ctx.patient.reference)}: age {ctx.age} on {ctx.today.isoformat()} (born {born})"
    )
