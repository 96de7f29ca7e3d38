"""One line of evidence per record item: which resource, what it says, by which code, and when."""

from __future__ import annotations

from hooks.record import (
    AllergyEntry,
    ConditionEntry,
    MedicationEntry,
    ObservationEntry,
    PatientRecord,
    UnusableObservation,
)
from hooks.terminology import Match


def condition(entry: ConditionEntry, matched: Match) -> str:
    status = entry.clinical_status or "no clinical status (counted as active)"
    when = f", {entry.date.isoformat()}" if entry.date else ""
    return f"{entry.reference}: {entry.label} ({matched.describe()}), {status}{when}"


def observation(entry: ObservationEntry) -> str:
    when = entry.date.isoformat() if entry.date else "no date"
    name = entry.label or entry.concept
    return f"{entry.reference}: {name} {entry.shown}, {when} ({entry.status})"


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


def age(record: PatientRecord) -> str:
    born = record.birth_date.isoformat() if record.birth_date else "unknown"
    return (
        f"{record.patient_reference}: age {record.age} on {record.today.isoformat()} (born {born})"
    )
