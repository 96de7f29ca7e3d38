"""The normalised patient record the rules read, built from parsed R4B resources (contract §2).

Conditions: refuted / entered-in-error never count; ``active`` is active, recurrence or relapse.
Observations: final, amended or corrected count (preliminary only when nothing final exists);
cancelled and entered-in-error never count; values converted to one unit per concept, and a value in
a unit that cannot be converted is kept aside as unusable. Medications: MedicationRequest active or
on-hold and MedicationStatement active are current. Allergies: refuted, entered-in-error, inactive
and resolved never count. Partial dates take their earliest day.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cds_service.fhir.parse import SkippedResource
from hooks.knowledge_base import KnowledgeBase, ObservationConcept
from hooks.terminology import Code

ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
NOT_COUNTED_VERIFICATION = {"refuted", "entered-in-error"}
FINAL_OBSERVATION = {"final", "amended", "corrected"}
CURRENT_REQUEST = {"active", "on-hold"}
INACTIVE_ALLERGY = {"inactive", "resolved"}


def as_date(value: Any) -> date | None:
    """A FHIR date/dateTime as a date; partial dates (``2020``, ``2020-03``) take the first day."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value[:4].isdigit():
        parts = [int(part) for part in value[:10].split("-") if part.isdigit()]
        return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    return None


def plain_number(value: float) -> str:
    """At most two decimals, no exponent, no trailing zeros: 1.7, 69.85, 1062.84."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def codes_of(concept: Any) -> tuple[tuple[Code, ...], str]:
    """Codes of a CodeableConcept and its best human label (text, else a display)."""
    if concept is None:
        return (), ""
    codes = tuple(
        Code(str(c.system or ""), str(c.code), c.display) for c in concept.coding or [] if c.code
    )
    label = concept.text or next((c.display for c in codes if c.display), "") or ""
    return codes, str(label)


def codes_of_json(concept: Any) -> tuple[list[Code], list[str]]:
    """Codes and texts (text, then displays) of a CodeableConcept in raw JSON."""
    if not isinstance(concept, dict):
        return [], []
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    codes = [
        Code(str(c.get("system", "")), str(c["code"]), c.get("display"))
        for c in codings
        if c.get("code")
    ]
    texts = [str(concept["text"])] if concept.get("text") else []
    texts += [str(c["display"]) for c in codings if c.get("display")]
    return codes, texts


def _status(concept: Any) -> str | None:
    codes, _ = codes_of(concept)
    return codes[0].code if codes else None


@dataclass(frozen=True)
class ConditionEntry:
    reference: str
    codes: tuple[Code, ...]
    label: str
    clinical_status: str | None
    active: bool
    date: date | None


@dataclass(frozen=True)
class ObservationEntry:
    reference: str
    concept: str
    code: Code | None
    label: str
    status: str
    date: date | None
    value: float | None  # in the concept's unit
    unit: str | None
    original: str  # the value as recorded, e.g. "150 umol/L"
    value_codes: tuple[Code, ...] = ()

    @property
    def shown(self) -> str:
        if self.value is None:
            return self.original
        converted = f"{plain_number(self.value)} {self.unit or ''}".strip()
        return (
            converted if self.original == converted else f"{converted} (recorded {self.original})"
        )


@dataclass(frozen=True)
class UnusableObservation:
    entry: ObservationEntry
    reason: str


@dataclass(frozen=True)
class MedicationEntry:
    reference: str
    codes: tuple[Code, ...]
    label: str
    status: str
    identified: bool = True  # False: it points to a Medication the request does not hold


@dataclass(frozen=True)
class AllergyEntry:
    reference: str
    codes: tuple[Code, ...]
    label: str
    criticality: str | None
    severe_reaction: bool
    manifestations: tuple[Code, ...]
    manifestation_labels: tuple[str, ...]


@dataclass(frozen=True)
class ProcedureEntry:
    reference: str
    codes: tuple[Code, ...]
    label: str
    status: str
    date: date | None


@dataclass(frozen=True)
class PatientRecord:
    patient_reference: str
    birth_date: date | None
    gender: str | None
    today: date
    conditions: tuple[ConditionEntry, ...] = ()
    observations: dict[str, tuple[ObservationEntry, ...]] = field(default_factory=dict)
    unusable: tuple[UnusableObservation, ...] = ()
    medications: tuple[MedicationEntry, ...] = ()
    allergies: tuple[AllergyEntry, ...] = ()
    procedures: tuple[ProcedureEntry, ...] = ()
    skipped: tuple[SkippedResource, ...] = ()
    gaps: dict[str, str] = field(default_factory=dict)  # prefetch key -> why it is missing

    @property
    def age(self) -> int | None:
        return age_on(self.birth_date, self.today) if self.birth_date else None

    def latest(self, concept: str) -> ObservationEntry | None:
        found = self.observations.get(concept, ())
        return found[0] if found else None

    def latest_within(self, concept: str, days: int) -> ObservationEntry | None:
        """The latest value dated within ``days`` of today, both ends included."""
        latest = self.latest(concept)
        if latest and latest.date and 0 <= (self.today - latest.date).days <= days:
            return latest
        return None


def _condition(resource: Any) -> ConditionEntry | None:
    if _status(resource.verificationStatus) in NOT_COUNTED_VERIFICATION:
        return None
    codes, label = codes_of(resource.code)
    clinical = _status(resource.clinicalStatus)
    return ConditionEntry(
        reference=f"Condition/{resource.id}",
        codes=codes,
        label=label or "(condition without a name)",
        clinical_status=clinical,
        # A condition without a clinical status is counted as active: absence of data is not
        # absence of risk.
        active=clinical is None or clinical in ACTIVE_CLINICAL,
        date=as_date(resource.onsetDateTime) or as_date(resource.recordedDate),
    )


def _observation_date(resource: Any) -> date | None:
    period = resource.effectivePeriod
    return (
        as_date(resource.effectiveDateTime)
        or as_date(resource.effectiveInstant)
        or (as_date(period.end) or as_date(period.start) if period else None)
        or as_date(resource.issued)
    )


def _unit_key(unit: str | None) -> str:
    return (unit or "").strip().replace("µ", "u").replace("μ", "u").lower()


def _convert(quantity: Any, concept: ObservationConcept) -> tuple[float | None, str]:
    value = quantity.value
    recorded = f"{Decimal(value).normalize():f} {quantity.unit or quantity.code or ''}".strip()
    for unit in (quantity.code, quantity.unit):
        factor = concept.factors.get(_unit_key(unit))
        if factor is not None:
            return float(value) * factor, recorded
    return None, recorded


def _observation(resource: Any, kb: KnowledgeBase) -> ObservationEntry | UnusableObservation | None:
    if resource.status not in FINAL_OBSERVATION | {"preliminary"}:
        return None
    codes, label = codes_of(resource.code)
    for concept in kb.observations.values():
        matched = concept.concept_set.match(codes)
        if matched is None:
            continue
        entry = ObservationEntry(
            reference=f"Observation/{resource.id}",
            concept=concept.id,
            code=matched.code,
            label=label,
            status=resource.status,
            date=_observation_date(resource),
            value=None,
            unit=concept.unit,
            original="",
        )
        if concept.coded:
            value_codes, value_label = codes_of(resource.valueCodeableConcept)
            value_label = value_label or str(resource.valueString or "")
            return replace(entry, value_codes=value_codes, original=value_label)
        quantity = resource.valueQuantity
        if quantity is None or quantity.value is None:
            return UnusableObservation(entry, "it has no numeric value")
        value, recorded = _convert(quantity, concept)
        if value is None:
            return UnusableObservation(
                replace(entry, original=recorded),
                f"its unit cannot be converted to {concept.unit}",
            )
        return replace(entry, value=value, original=recorded)
    return None


def _latest_first(entries: list[ObservationEntry]) -> tuple[ObservationEntry, ...]:
    final = [entry for entry in entries if entry.status in FINAL_OBSERVATION]
    chosen = final or entries  # preliminary counts only when nothing final exists
    return tuple(sorted(chosen, key=lambda e: e.date or date.min, reverse=True))


def _medication(resource: Any, medications: dict[str, Any]) -> MedicationEntry | None:
    kind = resource.get_resource_type()
    current = CURRENT_REQUEST if kind == "MedicationRequest" else {"active"}
    if resource.status not in current:
        return None
    codes, label = codes_of(resource.medicationCodeableConcept)
    reference = resource.medicationReference
    if reference is not None and not codes:
        medication = medications.get(str(reference.reference or ""))
        if medication is not None:
            codes, label = codes_of(medication.code)
        label = label or str(reference.display or "")
    return MedicationEntry(
        f"{kind}/{resource.id}",
        codes,
        label or "(medication not identified)",
        resource.status,
        identified=bool(codes or label),
    )


def _allergy(resource: Any) -> AllergyEntry | None:
    if _status(resource.verificationStatus) in NOT_COUNTED_VERIFICATION:
        return None
    if _status(resource.clinicalStatus) in INACTIVE_ALLERGY:
        return None
    codes, label = codes_of(resource.code)
    manifestations: list[Code] = []
    manifestation_labels: list[str] = []
    severe = False
    for reaction in resource.reaction or []:
        severe = severe or reaction.severity == "severe"
        substance_codes, _ = codes_of(reaction.substance)
        codes += substance_codes
        for manifestation in reaction.manifestation or []:
            found, text = codes_of(manifestation)
            manifestations.extend(found)
            manifestation_labels.append(text)
    return AllergyEntry(
        reference=f"AllergyIntolerance/{resource.id}",
        codes=codes,
        label=label or "(substance not named)",
        criticality=resource.criticality,
        severe_reaction=severe,
        manifestations=tuple(manifestations),
        manifestation_labels=tuple(label for label in manifestation_labels if label),
    )


def build_record(
    patient: Any,
    resources: list[Any],
    kb: KnowledgeBase,
    today: date,
    skipped: list[SkippedResource],
    gaps: dict[str, str],
) -> PatientRecord:
    """Reduce parsed resources of one patient to what the rules read."""
    medications = {
        f"Medication/{r.id}": r for r in resources if r.get_resource_type() == "Medication"
    }
    conditions: list[ConditionEntry] = []
    observations: dict[str, list[ObservationEntry]] = {}
    unusable: list[UnusableObservation] = []
    current: list[MedicationEntry] = []
    allergies: list[AllergyEntry] = []
    procedures: list[ProcedureEntry] = []
    for resource in resources:
        kind = resource.get_resource_type()
        if kind == "Condition":
            entry = _condition(resource)
            if entry:
                conditions.append(entry)
        elif kind == "Observation":
            result = _observation(resource, kb)
            if isinstance(result, UnusableObservation):
                unusable.append(result)
            elif result is not None:
                observations.setdefault(result.concept, []).append(result)
        elif kind in ("MedicationRequest", "MedicationStatement"):
            contained = {f"#{c.id}": c for c in resource.contained or [] if c.id}
            med = _medication(resource, {**medications, **contained})
            if med:
                current.append(med)
        elif kind == "AllergyIntolerance":
            allergy = _allergy(resource)
            if allergy:
                allergies.append(allergy)
        elif kind == "Procedure" and resource.status not in ("entered-in-error", "not-done"):
            codes, label = codes_of(resource.code)
            period = resource.performedPeriod
            performed = as_date(resource.performedDateTime) or (
                as_date(period.start) if period else None
            )
            procedures.append(
                ProcedureEntry(f"Procedure/{resource.id}", codes, label, resource.status, performed)
            )
    return PatientRecord(
        patient_reference=f"Patient/{patient.id}",
        birth_date=as_date(patient.birthDate),
        gender=patient.gender,
        today=today,
        conditions=tuple(conditions),
        observations={key: _latest_first(found) for key, found in observations.items()},
        unusable=tuple(unusable),
        medications=tuple(current),
        allergies=tuple(allergies),
        procedures=tuple(procedures),
        skipped=tuple(skipped),
        gaps=dict(gaps),
    )
