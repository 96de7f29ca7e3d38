"""One line of evidence per record item: which resource, what it says, by which code, and when."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hooks.terminology import Match

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
        return entry.original
    converted = f"{plain_number(entry.value)} {entry.unit or ''}".strip()
    return converted if entry.original == converted else f"{converted} (recorded {entry.original})"


def condition(entry: ConditionEntry, matched: Match) -> str:
    status = entry.clinical_status or "no clinical status (counted as active)"
    when = f", {entry.date.isoformat()}" if entry.date else ""
    return f"{entry.reference}: {entry.label} ({matched.describe()}), {status}{when}"


def observation(entry: ObservationEntry) -> str:
    when = entry.date.isoformat() if entry.date else "no date"
    name = entry.label or entry.concept
    return f"{entry.reference}: {name} {shown(entry)}, {when} ({entry.status})"


def unusable(item: UnusableObservation) -> str:
    entry = item.entry
    when = entry.date.isoformat() if entry.date else "no date"
    name = f"{entry.label or entry.concept} {entry.original}".strip()
    return f"{entry.reference}: {name} on {when} not used: {item.reason}"


def medication(entry: MedicationEntry, matched: Match) -> str:
    return f"{entry.reference}: {entry.label} ({matched.describe()}), {entry.status}"


def allergy(entry: AllergyEntry, matched: Match) -> str:
    details = [
        f"criticality {entry.criticality}" if entry.criticality else "criticality not stated"
    ]
    if entry.severe_reaction:
        details.append("a severe reaction")
    if entry.manifestation_labels:
        details.append("reaction: " + ", ".join(entry.manifestation_labels))
    return f"{entry.reference}: {entry.label} ({matched.describe()}); {'; '.join(details)}"


def age(ctx: ClinicalContext) -> str:
    born = ctx.patient.birth_date.isoformat() if ctx.patient.birth_date else "unknown"
    return f"{ctx.patient.reference}: age {ctx.age} on {ctx.today.isoformat()} (born {born})"
