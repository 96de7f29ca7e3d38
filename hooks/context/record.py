"""The patient's record from prefetched or fetched resources, read leniently (contract §2).

One function per resource type reads only what the rules use. A malformed element that is read
skips that resource, and the skip is named on the data card; a lone object where R4 wants a list
is read as a list of one and recorded as a deviation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

from hooks.context.model import (
    COMPARATORS,
    AllergyEntry,
    Comparator,
    ConditionEntry,
    MedicationEntry,
    ObservationEntry,
    ProcedureEntry,
    UnusableObservation,
)
from hooks.context.read import Concept, Malformed, Reader
from hooks.knowledge_base import KnowledgeBase
from hooks.terminology import Code

ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
NOT_COUNTED_VERIFICATION = {"refuted", "entered-in-error"}
FINAL_OBSERVATION = {"final", "amended", "corrected"}
READ_OBSERVATION = FINAL_OBSERVATION | {"preliminary"}
CURRENT_REQUEST = {"active", "on-hold"}
INACTIVE_ALLERGY = {"inactive", "resolved"}


def recorded_number(value: float) -> str:
    """A value as it was recorded: 1.3, 150, 1062.84 (no float noise, no exponent)."""
    return f"{Decimal(repr(value)).normalize():f}"


def condition(raw: Mapping[str, Any], r: Reader) -> ConditionEntry | None:
    if r.status(raw.get("verificationStatus"), "verificationStatus") in NOT_COUNTED_VERIFICATION:
        return None
    return _condition_entry(raw, r)


def refuted_condition(raw: Mapping[str, Any], r: Reader) -> ConditionEntry | None:
    """A condition recorded as ruled out (verificationStatus refuted): it never counts as the
    condition, and it is the record that the condition was excluded (hereditary fructose
    intolerance before a sorbitol product, card contract §8)."""
    if r.status(raw.get("verificationStatus"), "verificationStatus") != "refuted":
        return None
    return _condition_entry(raw, r)


def _condition_entry(raw: Mapping[str, Any], r: Reader) -> ConditionEntry:
    code = r.concept(raw.get("code"), "code") or Concept((), None)
    clinical = r.status(raw.get("clinicalStatus"), "clinicalStatus")
    return ConditionEntry(
        reference=r.reference,
        codes=code.codes,
        label=code.label or "(condition without a name)",
        clinical_status=clinical,
        # A condition without a clinical status is counted as active: absence of data is not
        # absence of risk.
        active=clinical is None or clinical in ACTIVE_CLINICAL,
        date=r.date(raw.get("onsetDateTime"), "onsetDateTime")
        or r.date(raw.get("recordedDate"), "recordedDate"),
    )


def _observation_date(raw: Mapping[str, Any], r: Reader) -> date | None:
    period = r.obj(raw.get("effectivePeriod"), "effectivePeriod")
    return (
        r.date(raw.get("effectiveDateTime"), "effectiveDateTime")
        or r.date(raw.get("effectiveInstant"), "effectiveInstant")
        or (
            r.date(period.get("end"), "effectivePeriod.end")
            or r.date(period.get("start"), "effectivePeriod.start")
            if period
            else None
        )
        or r.date(raw.get("issued"), "issued")
    )


class ObservationHead(NamedTuple):
    """What every Observation is read for: which concept, its status and date. Its value is
    read only when it can be the latest value of its concept (see ``latest_values``)."""

    raw: Mapping[str, Any]
    reader: Reader
    concept: str
    code: Code
    label: str
    status: str
    date: date | None


def observation_head(
    raw: Mapping[str, Any], r: Reader, kb: KnowledgeBase
) -> ObservationHead | None:
    code = r.concept(raw.get("code"), "code")
    found = kb.observation_concept(code.codes) if code else None
    if found is None or code is None:
        return None  # not an observation any rule reads
    status = r.code(raw.get("status"), "status")
    if status not in READ_OBSERVATION:
        if status is None:  # required by R4, and whether the value counts depends on it
            raise Malformed("status", "missing")
        return None
    return ObservationHead(
        raw, r, found[0], found[1], code.label, status, _observation_date(raw, r)
    )


def observation_value(
    head: ObservationHead, kb: KnowledgeBase
) -> ObservationEntry | UnusableObservation:
    raw, r = head.raw, head.reader
    concept = kb.observations[head.concept]

    def entry(
        value: float | None,
        original: str,
        answers: tuple[Code, ...] = (),
        comparator: Comparator | None = None,
    ) -> ObservationEntry:
        return ObservationEntry(
            r.reference,
            head.concept,
            head.code,
            head.label,
            head.status,
            head.date,
            value,
            concept.unit,
            original,
            answers,
            comparator,
        )

    if concept.coded:
        answer = r.concept(raw.get("valueCodeableConcept"), "valueCodeableConcept")
        text = (answer.label if answer else "") or r.text(raw.get("valueString"), "valueString")
        if not text and not (answer and answer.codes):
            # A result with no readable answer is not the latest answer: it must not hide an
            # older one (a positive HBsAg), nor count as "a result is on file".
            return UnusableObservation(entry(None, ""), "it has no coded or text answer")
        return entry(None, text or "", answer.codes if answer else ())
    quantity = r.quantity(raw.get("valueQuantity"), "valueQuantity")
    if quantity is None:
        return UnusableObservation(entry(None, ""), "it has no numeric value")
    # A comparator is kept with the value ("<7 mg/dL" is below 7): the rules compare through
    # ``model.compare``, which says when a comparator leaves a comparison open (IgA "<10" against
    # 7), and the data card names such a value instead of guessing.
    recorded = f"{quantity.comparator or ''}{recorded_number(quantity.value)} "
    recorded = (recorded + quantity.unit_shown).strip()
    comparator = next((c for c in COMPARATORS if c == quantity.comparator), None)
    if quantity.comparator is not None and comparator is None:
        return UnusableObservation(
            entry(None, recorded), "its comparator is not one of <, <=, >, >= (FHIR R4)"
        )
    factors = kb.unit_factors[head.concept]
    for key in quantity.unit_keys():
        factor = factors.get(key)
        if factor is not None:
            return entry(quantity.value * factor, recorded, comparator=comparator)
    return UnusableObservation(
        entry(None, recorded), f"its unit cannot be converted to {concept.unit}"
    )


def latest_values(
    heads: list[ObservationHead], kb: KnowledgeBase
) -> tuple[ObservationEntry | None, list[UnusableObservation], list[tuple[str, str]]]:
    """The latest usable value of one concept (final, amended or corrected; preliminary only
    when nothing final exists), the unusable values newer than it, and (reference, why) for
    values that are malformed. Older values are not read: no rule reads them."""
    unusable: list[UnusableObservation] = []
    malformed: list[tuple[str, str]] = []
    final = [h for h in heads if h.status in FINAL_OBSERVATION]
    preliminary = [h for h in heads if h.status not in FINAL_OBSERVATION]
    for group in (final, preliminary):
        for head in sorted(group, key=lambda h: h.date or date.min, reverse=True):
            try:
                found = observation_value(head, kb)
            except Malformed as exc:
                malformed.append(
                    (head.reader.reference, f"{exc.path} is not valid FHIR R4 ({exc.why})")
                )
                continue
            if isinstance(found, UnusableObservation):
                unusable.append(found)
                continue
            return found, unusable, malformed
    return None, unusable, malformed


def usable_values(heads: list[ObservationHead], kb: KnowledgeBase) -> tuple[ObservationEntry, ...]:
    """Every usable value of one concept, latest first: the final ones (preliminary only when
    no final one is usable, as for the latest). Malformed and unusable values are left out;
    ``latest_values`` reports those newer than the latest."""
    final = [h for h in heads if h.status in FINAL_OBSERVATION]
    preliminary = [h for h in heads if h.status not in FINAL_OBSERVATION]
    for group in (final, preliminary):
        found: list[ObservationEntry] = []
        for head in sorted(group, key=lambda h: h.date or date.min, reverse=True):
            try:
                value = observation_value(head, kb)
            except Malformed:
                continue
            if isinstance(value, ObservationEntry):
                found.append(value)
        if found:
            return tuple(found)
    return ()


def current_medication(
    reference: str,
    kind: str,
    status: str | None,
    medication: Concept | None,
    display: str | None,
    authored: date | None = None,
) -> MedicationEntry | None:
    """A MedicationRequest active or on-hold, a MedicationStatement active: current."""
    current = CURRENT_REQUEST if kind == "MedicationRequest" else {"active"}
    if status not in current:
        return None
    return medication_entry(reference, status, medication, display, authored)


def medication_entry(
    reference: str,
    status: str | None,
    medication: Concept | None,
    display: str | None,
    authored: date | None,
) -> MedicationEntry:
    label = (medication.label if medication else "") or display or ""
    codes = medication.codes if medication else ()
    return MedicationEntry(
        reference,
        codes,
        label or "(medication not identified)",
        status or "",
        identified=bool(codes or label),
        authored=authored,
    )


def medication_date(raw: Mapping[str, Any], r: Reader) -> date | None:
    """When a medication was ordered (authoredOn) or stated (effectiveDateTime, else
    dateAsserted). A malformed date makes it undated, not unread: the drug still counts."""
    names = (
        ("authoredOn",)
        if raw.get("resourceType") == "MedicationRequest"
        else ("effectiveDateTime", "dateAsserted")
    )
    for name in names:
        try:
            found = r.date(raw.get(name), name)
        except Malformed:
            continue
        if found:
            return found
    return None


class Administration(NamedTuple):
    """How a medication record says it is given (``MedicationEntry``'s route fields)."""

    route_codes: tuple[Code, ...] = ()
    route_texts: tuple[str, ...] = ()
    form_texts: tuple[str, ...] = ()
    instruction_texts: tuple[str, ...] = ()


def administration(
    raw: Mapping[str, Any],
    r: Reader,
    medication: Concept | None,
    medications: Mapping[str, Mapping[str, Any]],
) -> Administration:
    """The route of every dosage, the dose form (the Medication's ``form``, else the texts of
    the medication's concept, which name the form for an RxNorm drug) and the dosage texts. Read
    leniently: a malformed element is no route, and an unknown route counts as systemic for
    the rule that reads it, so nothing is lost by not skipping the resource."""
    key = "dosageInstruction" if raw.get("resourceType") == "MedicationRequest" else "dosage"
    codes: list[Code] = []
    routes: list[str] = []
    instructions: list[str] = []
    try:
        for item in r.objects(raw.get(key), key):
            route = r.concept(item.get("route"), f"{key}.route")
            if route is not None:
                codes += route.codes
                routes += route.texts
            for name in ("text", "patientInstruction"):
                text = r.text(item.get(name), f"{key}.{name}")
                if text:
                    instructions.append(text)
    except Malformed:
        pass
    forms: list[str] = []
    try:
        target, _ = r.reference_to(raw.get("medicationReference"), "medicationReference")
        found: Any = None
        if target and target.startswith("#"):
            contained = r.objects(raw.get("contained"), "contained")
            found = next((c for c in contained if f"#{c.get('id')}" == target), None)
        elif target:
            found = medications.get(target)
        form = r.concept(found.get("form"), "Medication.form") if found else None
        if form is not None:
            forms += form.texts
    except Malformed:
        pass
    if medication is not None:
        forms += medication.texts
    return Administration(tuple(codes), tuple(routes), tuple(forms), tuple(instructions))


def allergy(raw: Mapping[str, Any], r: Reader) -> AllergyEntry | None:
    if r.status(raw.get("verificationStatus"), "verificationStatus") in NOT_COUNTED_VERIFICATION:
        return None
    if r.status(raw.get("clinicalStatus"), "clinicalStatus") in INACTIVE_ALLERGY:
        return None
    code = r.concept(raw.get("code"), "code") or Concept((), None)
    codes = list(code.codes)
    manifestations: list[Code] = []
    labels: list[str] = []
    severe = False
    for reaction in r.objects(raw.get("reaction"), "reaction"):
        severe = severe or r.code(reaction.get("severity"), "reaction.severity") == "severe"
        substance = r.concept(reaction.get("substance"), "reaction.substance")
        if substance:
            codes += substance.codes
        for manifestation in r.concepts(reaction.get("manifestation"), "reaction.manifestation"):
            manifestations.extend(manifestation.codes)
            if manifestation.label:
                labels.append(manifestation.label)
    return AllergyEntry(
        reference=r.reference,
        codes=tuple(codes),
        label=code.label or "(substance not named)",
        criticality=r.code(raw.get("criticality"), "criticality"),
        severe_reaction=severe,
        manifestations=tuple(manifestations),
        manifestation_labels=tuple(labels),
    )


def procedure(raw: Mapping[str, Any], r: Reader) -> ProcedureEntry | None:
    status = r.code(raw.get("status"), "status") or ""
    if status in ("entered-in-error", "not-done"):
        return None
    code = r.concept(raw.get("code"), "code") or Concept((), None)
    period = r.obj(raw.get("performedPeriod"), "performedPeriod")
    performed = r.date(raw.get("performedDateTime"), "performedDateTime") or (
        r.date(period.get("start"), "performedPeriod.start") if period else None
    )
    return ProcedureEntry(r.reference, code.codes, code.label, status, performed)
