"""The typed clinical context: FHIR JSON read once, leniently, into frozen objects the rules read.

``read_session`` → (FHIR reads of the Medications it names) → ``focus_of`` → ``build_context``.
"""

from __future__ import annotations

from hooks.context.build import Focus, Session, build_context, focus_of, read_session
from hooks.context.model import (
    AllergyEntry,
    ClinicalContext,
    ConditionEntry,
    IgHistory,
    IgOrder,
    MedicationEntry,
    MedicationOrder,
    ObservationEntry,
    PatientFacts,
    ProcedureEntry,
    SessionOrder,
    Skipped,
    UnusableObservation,
)

__all__ = [
    "AllergyEntry",
    "ClinicalContext",
    "ConditionEntry",
    "Focus",
    "IgHistory",
    "IgOrder",
    "MedicationEntry",
    "MedicationOrder",
    "ObservationEntry",
    "PatientFacts",
    "ProcedureEntry",
    "Session",
    "SessionOrder",
    "Skipped",
    "UnusableObservation",
    "build_context",
    "focus_of",
    "read_session",
]
