"""Build the ClinicalContext once per call, at the boundary: the only code that reads FHIR JSON.

Two steps, because a call with no immune globulin order must answer without touching patient
data: :func:`read_session` reads the ordering session (``draftOrders``) and tells which Medication
references must be read from the FHIR server; :func:`build_context` then reads the patient's data.
Work is bounded: draft orders per call, nesting depth of an order the service may echo back, and
resources per call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, TypeVar

from cds_service.errors import InvalidHookRequest, Issue, PrefetchUnavailable
from hooks.context import record
from hooks.context.model import (
    AllergyEntry,
    ClinicalContext,
    ConditionEntry,
    IgHistory,
    IgOrder,
    MedicationEntry,
    ObservationEntry,
    PatientFacts,
    ProcedureEntry,
    SessionOrder,
    Skipped,
    UnusableObservation,
)
from hooks.context.orders import (
    medication_concept,
    read_medication,
    read_medication_order,
    recognise,
)
from hooks.context.read import (
    Deviation,
    Malformed,
    Reader,
    about_another_patient,
    reference_of,
    subject_of,
)
from hooks.context.strict import validation_failures
from hooks.knowledge_base import KnowledgeBase

T = TypeVar("T")
MAX_DRAFT_ORDERS = 200
MAX_ORDER_DEPTH = 32
MAX_SESSIONS = 100  # plasma-exchange sessions read from one occurrenceTiming
NOT_HISTORY = ("entered-in-error", "cancelled", "draft")
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")
# Concepts whose every value is kept (ClinicalContext.history), not only the latest: the
# boxed-warning tier reads a creatinine rise and whether a lab factor is newer than the last
# immune globulin order.
TREND_CONCEPTS = frozenset(
    {"serum-creatinine", "egfr", "bmi", "body-weight", "triglycerides", "smoking-status"}
)


@dataclass(frozen=True)
class Session:
    """The ordering session of one call: every draft order, and those in focus."""

    hook: str
    patient_id: str
    entries: tuple[dict[str, Any], ...]
    in_focus: frozenset[str]  # references of the orders in focus
    medications: Mapping[str, Mapping[str, Any]]  # Medication resources of draftOrders
    fhir_server: str | None = None  # the request's fhirServer: absolute references under it

    def references_to_read(self) -> list[str]:
        """Medications that orders in focus point to and the request does not hold."""
        found = []
        for raw in self.entries:
            if raw.get("resourceType") != "MedicationRequest" or not self._focused(raw):
                continue
            if raw.get("medicationCodeableConcept") is not None:
                continue
            pointer = raw.get("medicationReference")
            target = pointer.get("reference") if isinstance(pointer, dict) else None
            if (
                isinstance(target, str)
                and target.startswith("Medication/")
                and target not in self.medications
            ):
                found.append(target)
        return sorted(set(found))

    def _focused(self, raw: Mapping[str, Any]) -> bool:
        return reference_of(dict(raw)) in self.in_focus


@dataclass(frozen=True)
class Focus:
    """What the session holds that the checks look at."""

    ig_orders: tuple[IgOrder, ...]
    plasma_exchange_orders: tuple[SessionOrder, ...]
    session_orders: tuple[SessionOrder, ...]
    plasma_exchanges_in_session: tuple[SessionOrder, ...]
    deviations: tuple[Deviation, ...] = ()
    ig_drafts: tuple[IgOrder, ...] = ()  # every immune globulin draft, in focus or not

    @property
    def empty(self) -> bool:
        return not self.ig_orders and not self.plasma_exchange_orders


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counted iteratively and stopped past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def read_session(hook: str, context: Mapping[str, Any], fhir_server: str | None = None) -> Session:
    """The draft orders of an order hook (``context.draftOrders``); bounded in count and depth.
    patient-view has no ordering session: an empty one. A draft order for another patient than
    ``context.patientId`` is a request the service must not answer (400)."""
    drafts = context.get("draftOrders") or {}
    entries = [entry["resource"] for entry in drafts.get("entry", [])]
    if len(entries) > MAX_DRAFT_ORDERS:
        message = f"draftOrders holds {len(entries)} resources; at most {MAX_DRAFT_ORDERS} are read"
        raise InvalidHookRequest(message, [Issue(message, "context.draftOrders")])
    references = [reference_of(raw) for raw in entries]
    patient_id = str(context["patientId"])
    for raw, reference in zip(entries, references, strict=True):
        if about_another_patient(raw, patient_id, fhir_server):
            message = (
                f"draftOrders holds {reference} for {subject_of(raw)}, "
                f"not for context.patientId {patient_id}"
            )
            raise InvalidHookRequest(message, [Issue(message, "context.draftOrders")])
    if hook == "order-select":
        in_focus = frozenset(context["selections"])
    else:
        in_focus = frozenset(references)
    for raw, reference in zip(entries, references, strict=True):
        if reference in in_focus and _depth(raw, MAX_ORDER_DEPTH) > MAX_ORDER_DEPTH:
            message = f"{reference} is nested deeper than {MAX_ORDER_DEPTH} levels"
            raise InvalidHookRequest(message, [Issue(message, "context.draftOrders")])
    medications = {
        ref: raw
        for raw, ref in zip(entries, references, strict=True)
        if raw.get("resourceType") == "Medication"
    }
    return Session(hook, patient_id, tuple(entries), in_focus, medications, fhir_server)


def _session_order(raw: Mapping[str, Any], r: Reader) -> SessionOrder:
    # What is ordered: a ServiceRequest's code, a MedicationRequest's medication concept (so a
    # suggested companion already among the drafts is not suggested again).
    key = "code" if "code" in raw else "medicationCodeableConcept"
    try:
        code = r.concept(raw.get(key), key)
    except Malformed:
        code = None
    return SessionOrder(r.reference, str(raw.get("resourceType")), code)


def _plasma_exchange(raw: Mapping[str, Any], r: Reader, order: SessionOrder) -> SessionOrder:
    """A plasma-exchange ServiceRequest: when it is ordered and scheduled, and what for. An
    unreadable element is left out (the exchange is then undated, or has no reason)."""

    def reasons() -> tuple[str, ...]:
        items = r.objects(raw.get("reasonReference"), "reasonReference")
        found = (r.reference_to(item, "reasonReference")[0] for item in items)
        return tuple(ref for ref in found if ref)

    return replace(
        order,
        authored=_lenient(lambda: r.date(raw.get("authoredOn"), "authoredOn"), None),
        occurrence=_lenient(lambda: _occurrence(raw, r), ()),
        reason_codes=_lenient(lambda: r.concepts(raw.get("reasonCode"), "reasonCode"), ()),
        reason_references=_lenient(reasons, ()),
    )


def _lenient(read: Callable[[], T], otherwise: T) -> T:
    try:
        return read()
    except Malformed:
        return otherwise


def _occurrence(raw: Mapping[str, Any], r: Reader) -> tuple[date, ...]:
    """Every day ``occurrence[x]`` names: the dateTime; the period's start and end; the timing's
    events, else its bounds and, from the start, ``count`` sessions at ``period`` intervals."""
    if "occurrenceDateTime" in raw:
        day = r.date(raw.get("occurrenceDateTime"), "occurrenceDateTime")
        return (day,) if day else ()
    period = r.obj(raw.get("occurrencePeriod"), "occurrencePeriod")
    if period is not None:
        ends = (
            r.date(period.get("start"), "occurrencePeriod.start"),
            r.date(period.get("end"), "occurrencePeriod.end"),
        )
        return tuple(sorted({day for day in ends if day}))
    timing = r.obj(raw.get("occurrenceTiming"), "occurrenceTiming") or {}
    event = timing.get("event")
    values = event if isinstance(event, list) else [] if event is None else [event]
    events = {day for value in values if (day := r.date(value, "occurrenceTiming.event"))}
    if events:
        return tuple(sorted(events))
    repeat = r.obj(timing.get("repeat"), "occurrenceTiming.repeat") or {}
    bounds = r.obj(repeat.get("boundsPeriod"), "occurrenceTiming.repeat.boundsPeriod") or {}
    start = r.date(bounds.get("start"), "occurrenceTiming.repeat.boundsPeriod.start")
    end = r.date(bounds.get("end"), "occurrenceTiming.repeat.boundsPeriod.end")
    days = {day for day in (start, end) if day}
    count = r.integer(repeat.get("count"), "occurrenceTiming.repeat.count")
    length = r.number(repeat.get("period"), "occurrenceTiming.repeat.period")
    unit = {"d": 1, "wk": 7}.get(r.code(repeat.get("periodUnit"), "periodUnit") or "")
    frequency = r.number(repeat.get("frequency"), "occurrenceTiming.repeat.frequency") or 1
    if start and count and length and unit and 0 < count <= MAX_SESSIONS and frequency > 0:
        step = length * unit / frequency
        days |= {start + timedelta(days=math.floor(i * step)) for i in range(count)}
    return tuple(sorted(days))


def focus_of(
    session: Session, fetched: Mapping[str, Mapping[str, Any]], kb: KnowledgeBase
) -> Focus:
    """The immune globulin and plasma-exchange orders in focus; ``fetched``: Medications read
    from the FHIR server. An order with no medication at all is not one the service can check."""
    deviations: list[Deviation] = []
    medications = {**session.medications, **fetched}
    ig_orders, plex_focus, session_orders, plex_session = [], [], [], []
    ig_drafts: list[IgOrder] = []
    plasma_exchange = kb.valueset("plasma-exchange")
    for raw in session.entries:
        reference = reference_of(raw)
        r = Reader(reference, deviations)
        focused = reference in session.in_focus
        if raw.get("resourceType") == "MedicationRequest" and focused:
            found = recognise(read_medication_order(raw, r, medications), kb)
            if found is not None:
                ig_orders.append(found)
                ig_drafts.append(found)
                continue
            # another drug in focus (a hydration order accepted from a card) is a session order
        elif raw.get("resourceType") == "MedicationRequest":
            # An unselected draft is part of a course, or a duplicate (contract §7.4-5); its
            # deviations are not the data card's business: it is not being checked.
            other = recognise(read_medication_order(raw, Reader(reference, []), medications), kb)
            if other is not None:
                ig_drafts.append(other)
        order = _session_order(raw, r)
        session_orders.append(order)
        is_plex = (
            order.resource_type == "ServiceRequest"
            and order.code is not None
            and plasma_exchange.match(order.code.codes, order.code.texts) is not None
        )
        if is_plex:
            order = _plasma_exchange(raw, r, order)
            plex_session.append(order)
            if focused:
                plex_focus.append(order)
    return Focus(
        tuple(ig_orders),
        tuple(plex_focus),
        tuple(session_orders),
        tuple(plex_session),
        tuple(deviations),
        tuple(ig_drafts),
    )


def _patient(resources: Sequence[Any], patient_id: str) -> tuple[PatientFacts, list[Skipped]]:
    patient = next(
        (r for r in resources if isinstance(r, dict) and r.get("resourceType") == "Patient"), None
    )
    if patient is None:
        issue = Issue("Essential data 'patient' holds no FHIR R4 Patient", "prefetch.patient")
        raise PrefetchUnavailable("the Patient could not be obtained", [issue])
    if patient.get("id") != patient_id:
        # Another patient's record is no record of this one: the essential data is missing (412)
        message = (
            f"prefetch.patient is Patient/{patient.get('id')} but context.patientId is {patient_id}"
        )
        raise PrefetchUnavailable(message, [Issue(message, "prefetch.patient")])
    r = Reader(f"Patient/{patient_id}", [])
    skipped = []
    try:
        born = r.date(patient.get("birthDate"), "birthDate")
    except Malformed as exc:
        born = None
        skipped.append(Skipped(r.reference, f"its birthDate is not read: {exc}"))
    gender = patient.get("gender")
    return (
        PatientFacts(r.reference, born, gender if isinstance(gender, str) else None),
        skipped,
    )


@dataclass
class _Record:
    conditions: list[ConditionEntry] = field(default_factory=list)
    refuted_conditions: list[ConditionEntry] = field(default_factory=list)
    observations: dict[str, list[record.ObservationHead]] = field(default_factory=dict)
    medications: list[MedicationEntry] = field(default_factory=list)
    past_medications: list[MedicationEntry] = field(default_factory=list)
    allergies: list[AllergyEntry] = field(default_factory=list)
    procedures: list[ProcedureEntry] = field(default_factory=list)
    history: list[IgHistory] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def add(
        self, raw: dict[str, Any], r: Reader, kb: KnowledgeBase, meds: Mapping[str, Any]
    ) -> None:
        kind = raw.get("resourceType")
        if kind == "Condition":
            entry = record.condition(raw, r)
            if entry:
                self.conditions.append(entry)
            elif refuted := record.refuted_condition(raw, r):
                self.refuted_conditions.append(refuted)
        elif kind == "Observation":
            head = record.observation_head(raw, r, kb)
            if head is not None:
                self.observations.setdefault(head.concept, []).append(head)
        elif kind in MEDICATION_TYPES:
            self._medication(raw, r, kb, meds)
        elif kind == "AllergyIntolerance":
            allergy = record.allergy(raw, r)
            if allergy:
                self.allergies.append(allergy)
        elif kind == "Procedure":
            procedure = record.procedure(raw, r)
            if procedure:
                self.procedures.append(procedure)

    def _medication(
        self, raw: dict[str, Any], r: Reader, kb: KnowledgeBase, meds: Mapping[str, Any]
    ) -> None:
        """A current medication (contract §2); and, when it is immune globulin, the history."""
        status = r.code(raw.get("status"), "status")
        concept, _, display, problems = read_medication(raw, r, meds)
        for problem in problems.values():
            raise problem  # the resource is skipped, and named
        authored = record.medication_date(raw, r)
        current = record.current_medication(
            r.reference, str(raw.get("resourceType")), status, concept, display, authored
        )
        if current:
            given = record.administration(raw, r, concept, meds)
            self.medications.append(replace(current, **given._asdict()))
        elif status not in NOT_HISTORY:
            self.past_medications.append(
                record.medication_entry(r.reference, status, concept, display, authored)
            )
        if status in NOT_HISTORY or medication_concept(concept, display) is None:
            return
        named = medication_concept(concept, display)
        assert named is not None
        if kb.catalogue.identify(named.codes, named.texts) is None:
            return  # not immune globulin: its dosage, dates and reasons are read by no rule
        order = read_medication_order(raw, r, meds)
        found = recognise(order, kb)
        if found is not None:
            self.history.append(IgHistory(found, status or "", order.authored))


def _latest(
    built: _Record, kb: KnowledgeBase
) -> tuple[
    dict[str, ObservationEntry],
    Mapping[str, tuple[ObservationEntry, ...]],
    list[UnusableObservation],
]:
    latest: dict[str, ObservationEntry] = {}
    unusable: list[UnusableObservation] = []
    for concept, heads in built.observations.items():
        found, unused, malformed = record.latest_values(heads, kb)
        if found is not None:
            latest[concept] = found
        unusable += unused
        built.skipped += [Skipped(reference, why) for reference, why in malformed]
    trends = {c: heads for c, heads in built.observations.items() if c in TREND_CONCEPTS}
    return latest, History(trends, kb), unusable


class History(Mapping[str, tuple[ObservationEntry, ...]]):
    """Every usable value of each trend concept, latest first, read when a rule first asks
    (``ClinicalContext.values``): a record holds years of weights and smoking statuses, and
    most calls read the history of one or two concepts. What is malformed or unusable among
    the values was named already (``latest_values``): only the newer ones matter to it."""

    def __init__(self, heads: dict[str, list[record.ObservationHead]], kb: KnowledgeBase):
        self._heads, self._kb = heads, kb
        self._read: dict[str, tuple[ObservationEntry, ...]] = {}

    def __getitem__(self, concept: str) -> tuple[ObservationEntry, ...]:
        found = self._read.get(concept)
        if found is None:
            found = self._read[concept] = record.usable_values(self._heads[concept], self._kb)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._heads)

    def __len__(self) -> int:
        return len(self._heads)


def build_context(
    session: Session,
    focus: Focus,
    resources: Mapping[str, Sequence[Any]],
    gaps: Mapping[str, str],
    kb: KnowledgeBase,
    today: date,
    *,
    strict: bool = False,
    max_resources: int = 5000,
) -> ClinicalContext:
    """The clinical context of one call: the record, the orders, and what could not be seen."""
    patient, skipped = _patient(resources.get("patient", ()), session.patient_id)
    gaps = dict(gaps)
    raws: list[Any] = []
    for key, found in resources.items():
        if key == "patient":
            continue
        room = max_resources - len(raws)
        if len(found) > room:
            gaps[key] = f"more than {max_resources} resources in one call; only the first were read"
        raws.extend(found[: max(room, 0)])
    deviations = list(focus.deviations)
    built = _Record(skipped=skipped)
    invalid = validation_failures(raws) if strict else {}
    medications = {
        f"Medication/{raw.get('id')}": raw
        for raw in raws
        if isinstance(raw, dict) and raw.get("resourceType") == "Medication"
    }
    other_patient: list[str] = []
    for raw in raws:
        if not isinstance(raw, dict) or not isinstance(raw.get("resourceType"), str):
            built.skipped.append(
                Skipped("(not a resource)", "not a JSON object with a resourceType")
            )
            continue
        reference = reference_of(raw)
        if about_another_patient(raw, session.patient_id, session.fhir_server):
            other_patient.append(reference)  # never read; counted on the data card
            continue
        if reference in invalid:
            built.skipped.append(Skipped(reference, invalid[reference]))
            continue
        found_deviations: list[Deviation] = []
        r = Reader(reference, found_deviations)
        try:
            built.add(raw, r, kb, medications)
        except Malformed as exc:
            built.skipped.append(Skipped(reference, f"{exc.path} is not valid FHIR R4 ({exc.why})"))
            continue
        deviations += found_deviations
    observations, history, unusable = _latest(built, kb)
    if strict:
        for order in focus.ig_orders:
            reason = validation_failures([dict(order.order.raw)]).get(order.reference)
            if reason:
                built.skipped.append(Skipped(order.reference, f"{reason} (checked leniently)"))
    return ClinicalContext(
        hook=session.hook,
        today=today,
        patient=patient,
        conditions=tuple(built.conditions),
        refuted_conditions=tuple(built.refuted_conditions),
        observations=observations,
        history=history,
        unusable=tuple(unusable),
        medications=tuple(built.medications),
        past_medications=tuple(built.past_medications),
        allergies=tuple(built.allergies),
        procedures=tuple(built.procedures),
        ig_orders=focus.ig_orders,
        ig_drafts=focus.ig_drafts,
        plasma_exchange_orders=focus.plasma_exchange_orders,
        session_orders=focus.session_orders,
        plasma_exchanges_in_session=focus.plasma_exchanges_in_session,
        ig_history=tuple(built.history),
        gaps=gaps,
        skipped=tuple(built.skipped),
        other_patient=tuple(other_patient),
        deviations=tuple(dict.fromkeys(deviations)),
        membership=kb.membership,
    )
