"""The typed clinical context the rules read: built once per call, frozen, nothing else.

Record (contract §2): conditions that count (refuted and entered-in-error never do, and refuted
ones are kept apart as the record that a condition was ruled out; *active* is
active, recurrence or relapse; a condition without a clinical status counts as active, because
absence of data is not absence of risk); observations that count (final, amended, corrected;
preliminary only when nothing final exists), latest first per concept, in the concept's unit;
current medications (MedicationRequest active or on-hold, MedicationStatement active); allergies
that count (not refuted, entered-in-error, inactive or resolved); procedures not in error or not
done. Orders: the immune globulin and plasma-exchange orders in focus, every order of the ordering
session, and the patient's earlier immune globulin. Data the service could not see: gaps per
prefetch key, skipped resources, unusable values, tolerated deviations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol, TypeVar

from hooks.context.read import Concept, Deviation, Quantity, within_days
from hooks.knowledge_base.schema import Product
from hooks.terminology import Code, ConceptSet, Match, MembershipIndex

Route = Literal["IV", "SC"]
Comparator = Literal["<", "<=", ">", ">="]  # FHIR R4 QuantityComparator
COMPARATORS: tuple[Comparator, ...] = ("<", "<=", ">", ">=")
T = TypeVar("T")
C = TypeVar("C", bound="Coded")


class Coded(Protocol):
    """A record item with a reference, codes and a label (conditions, medications, allergies)."""

    @property
    def reference(self) -> str: ...
    @property
    def codes(self) -> tuple[Code, ...]: ...
    @property
    def label(self) -> str: ...


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class Skipped:
    """A resource the service could not use, and why (never its content: it may be PHI)."""

    reference: str
    reason: str


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
    # valueQuantity.comparator: "<7 mg/dL" is a value below 7, not the value 7
    comparator: Comparator | None = None


def compare(entry: ObservationEntry, op: Comparator, limit: float) -> bool | None:
    """Whether the recorded value is ``op limit``: True or False when every value the record
    allows answers the same, None when its comparator leaves it open (IgA "<10" against 7) or
    it has no number. Without a comparator, the number itself is compared."""
    if entry.value is None:
        return None
    v = entry.value
    # the values the record allows: from low to high, each end open or closed
    low, low_open, high, high_open = {
        None: (v, False, v, False),
        "<": (-math.inf, True, v, True),
        "<=": (-math.inf, True, v, False),
        ">": (v, True, math.inf, True),
        ">=": (v, False, math.inf, True),
    }[entry.comparator]
    if op == "<":
        every, none = high < limit or (high == limit and high_open), low >= limit
    elif op == "<=":
        every, none = high <= limit, low > limit or (low == limit and low_open)
    elif op == ">":
        every, none = low > limit or (low == limit and low_open), high <= limit
    else:
        every, none = low >= limit, high < limit or (high == limit and high_open)
    return True if every else False if none else None


@dataclass(frozen=True)
class UnusableObservation:
    entry: ObservationEntry
    reason: str


@dataclass(frozen=True)
class MedicationEntry:
    """A medication record: current (contract §2), or past (``past_medications``)."""

    reference: str
    codes: tuple[Code, ...]
    label: str
    status: str
    identified: bool = True  # False: it points to a Medication the request does not hold
    # MedicationRequest.authoredOn; MedicationStatement effectiveDateTime, else dateAsserted
    authored: date | None = None
    # How it is given (renal: a nephrotoxic drug counts by its route), in the order the rule
    # reads them: the codes, texts and displays of dosageInstruction.route (MedicationStatement:
    # dosage.route); the dose form (Medication.form, else the concept's own texts, which for an
    # RxNorm drug name the form: "vancomycin 125 MG Oral Capsule"); dosage instruction texts.
    route_codes: tuple[Code, ...] = ()
    route_texts: tuple[str, ...] = ()
    form_texts: tuple[str, ...] = ()
    instruction_texts: tuple[str, ...] = ()


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
class Repeat:
    """``Timing.repeat``: what the dose reader needs of it."""

    frequency: float | None
    period: float | None
    period_unit: str | None
    count: int | None
    bounds: Quantity | None


@dataclass(frozen=True)
class Dosage:
    """The first ``doseAndRate`` of a dosage instruction, its route and timing."""

    route: Concept | None
    dose: Quantity | None
    dose_is_range: bool
    repeat: Repeat | None


@dataclass(frozen=True)
class Schedule:
    """When an order's administrations are (contract §7.4): what courses and duplicates read.
    Read apart from the dosage, so a malformed date never disables the dose checks."""

    events: tuple[date, ...] = ()  # timing.event of every dosage instruction
    bounds_start: date | None = None  # timing.repeat.boundsPeriod of the first instruction
    bounds_end: date | None = None
    validity_start: date | None = None  # dispenseRequest.validityPeriod.start


@dataclass(frozen=True)
class MedicationOrder:
    """A MedicationRequest (or MedicationStatement), read for the checks.

    ``unreadable`` names each element that was malformed and the checks that read it do not run
    (a malformed dosage disables the dose checks, never the contraindication checks).
    """

    reference: str
    resource_type: str
    status: str | None
    authored: date | None
    medication: Concept | None  # medicationCodeableConcept, or the Medication it points to
    medication_reference: str | None
    medication_display: str | None
    dosages: tuple[Dosage, ...]
    supply_duration: Quantity | None
    reason_codes: tuple[Concept, ...]
    reason_references: tuple[str, ...]
    raw: Mapping[str, Any]  # the resource as the client sent it: the base of a revised order
    unreadable: Mapping[str, str] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=Schedule)
    # Grams per mL its Medication's ``ingredient.strength`` states (contained, or read from the
    # FHIR server); what a dose in mL is read with (contract §8 "Dose reading").
    strength_g_per_ml: float | None = None

    @property
    def has_reason(self) -> bool:
        return bool(self.reason_codes or self.reason_references)


@dataclass(frozen=True)
class SessionOrder:
    """Any order of the ordering session (``draftOrders``), selected or not."""

    reference: str
    resource_type: str
    code: Concept | None  # ServiceRequest.code, MedicationRequest.medicationCodeableConcept
    # Read for plasma-exchange orders only (plasma-exchange sequencing): when it is ordered,
    # when it is scheduled (ServiceRequest.occurrence[x]: every day it names; () undated or
    # unreadable), and what for (reasonCode; reasonReference to a Condition).
    authored: date | None = None
    occurrence: tuple[date, ...] = ()
    reason_codes: tuple[Concept, ...] = ()
    reason_references: tuple[str, ...] = ()


@dataclass(frozen=True)
class IgOrder:
    """An immune globulin order: which product (None: generic), how it was recognised, route."""

    order: MedicationOrder
    product: Product | None
    label: str
    matched_by: str
    route: Route
    route_basis: str
    # No route was given (or readable), and neither the product's one labelled route nor an
    # ATC class tells it: IV is assumed so the IV checks run (card contract §9, missing route).
    route_assumed: bool = False

    @property
    def reference(self) -> str:
        return self.order.reference

    @property
    def product_name(self) -> str:
        return self.product.brand if self.product else "immune globulin (product not identified)"


@dataclass(frozen=True)
class IgHistory:
    """An earlier immune globulin order of the patient (not a draft, cancelled or in error)."""

    order: IgOrder
    status: str
    authored: date | None

    @property
    def current(self) -> bool:
        return self.status in ("active", "on-hold")


@dataclass(frozen=True)
class PatientFacts:
    reference: str
    birth_date: date | None
    gender: str | None


@dataclass(frozen=True)
class ClinicalContext:
    hook: str
    today: date
    patient: PatientFacts
    conditions: tuple[ConditionEntry, ...] = ()
    # conditions recorded as ruled out (verificationStatus refuted): never counted as present
    refuted_conditions: tuple[ConditionEntry, ...] = ()
    # concept -> its latest usable value (older values are not read: no rule reads them)
    observations: Mapping[str, ObservationEntry] = field(default_factory=dict)
    # concept -> every usable value, latest first, for the concepts whose course a rule reads
    # (a creatinine rise; an eGFR that fell below 60 since the last immune globulin order)
    history: Mapping[str, tuple[ObservationEntry, ...]] = field(default_factory=dict)
    unusable: tuple[UnusableObservation, ...] = ()
    medications: tuple[MedicationEntry, ...] = ()
    # stopped, completed (and other not current) medication records: when a drug was started
    past_medications: tuple[MedicationEntry, ...] = ()
    allergies: tuple[AllergyEntry, ...] = ()
    procedures: tuple[ProcedureEntry, ...] = ()
    ig_orders: tuple[IgOrder, ...] = ()  # in focus
    # every immune globulin draft of the call, in focus or not, in draftOrders order (the orders
    # in focus are the same objects as in ig_orders): courses and duplicates read them
    ig_drafts: tuple[IgOrder, ...] = ()
    plasma_exchange_orders: tuple[SessionOrder, ...] = ()  # in focus
    session_orders: tuple[SessionOrder, ...] = ()  # every draft order of the call
    plasma_exchanges_in_session: tuple[SessionOrder, ...] = ()
    ig_history: tuple[IgHistory, ...] = ()
    gaps: Mapping[str, str] = field(default_factory=dict)  # prefetch key -> why (and checks)
    skipped: tuple[Skipped, ...] = ()
    # Resources whose subject or patient is another patient (``Type/id``): never read; the data
    # card says how many of which type, the audit names them.
    other_patient: tuple[str, ...] = ()
    deviations: tuple[Deviation, ...] = ()
    # Which value sets each record item belongs to, computed once per item from the knowledge's
    # index: rules ask about dozens of value sets. A cache, not data: excluded from comparisons.
    membership: MembershipIndex | None = field(default=None, compare=False, repr=False)
    _members: dict[int, dict[str, Match]] = field(default_factory=dict, compare=False, repr=False)
    # Values derived from the whole context once per call (the courses): a cache, not data;
    # not an init field, so a context made with dataclasses.replace starts with an empty one.
    _derived: dict[Hashable, Any] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def age(self) -> int | None:
        born = self.patient.birth_date
        return age_on(born, self.today) if born else None

    @property
    def deviation_notes(self) -> tuple[str, ...]:
        """The tolerated deviations, each said once: for the cards' detail and the audit."""
        return tuple(sorted({d.describe() for d in self.deviations}))

    @property
    def other_patient_counts(self) -> dict[str, int]:
        """How many resources of each type named another patient and were ignored."""
        counts: dict[str, int] = {}
        for reference in self.other_patient:
            kind = reference.partition("/")[0]
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def current_ig(self) -> tuple[IgHistory, ...]:
        return tuple(h for h in self.ig_history if h.current)

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A value computed from the whole context, once per call (e.g. its courses)."""
        if key not in self._derived:
            self._derived[key] = compute()
        found: T = self._derived[key]
        return found

    def derived_with(
        self, key: Hashable, owners: tuple[object, ...], compute: Callable[[], T]
    ) -> T:
        """``derived``, for a value that also depends on ``owners`` (the knowledge, the
        thresholds): keyed by their identity, and kept beside them so that an identity cannot
        pass to another object within the call."""
        full = (key, *map(id, owners))
        kept = self._derived.get(full)
        if kept is None or any(a is not b for a, b in zip(kept[0], owners, strict=True)):
            kept = self._derived[full] = (owners, compute())
        found: T = kept[1]
        return found

    def latest(self, concept: str) -> ObservationEntry | None:
        return self.observations.get(concept)

    def latest_within(self, concept: str, days: int) -> ObservationEntry | None:
        """The latest value dated within ``days`` of today, both ends included."""
        latest = self.latest(concept)
        if latest and within_days(self.today, latest.date, days):
            return latest
        return None

    def values(self, concept: str) -> tuple[ObservationEntry, ...]:
        """Every usable value of ``concept``, latest first, where the context keeps its history;
        else the latest alone."""
        kept = self.history.get(concept)
        if kept is not None:
            return kept
        latest = self.latest(concept)
        return (latest,) if latest else ()

    def first_prescribed(self, concept_set: ConceptSet) -> date | None:
        """The earliest date of a medication record, current or past, in ``concept_set``."""
        return self._per_set(
            "first-prescribed",
            concept_set,
            lambda: min(
                (
                    m.authored
                    for m in (*self.medications, *self.past_medications)
                    if m.authored and self.match(m, concept_set)
                ),
                default=None,
            ),
        )

    def match(self, item: Coded, concept_set: ConceptSet) -> Match | None:
        """How ``item`` (by its codes, else its label) belongs to ``concept_set``, if it does."""
        if self.membership is None or not self.membership.covers(concept_set):
            return concept_set.match(item.codes, (item.label,))
        return self._members_of(item).get(concept_set.id)

    def _members_of(self, item: Coded) -> dict[str, Match]:
        """Every value set of the knowledge ``item`` belongs to, found once per call."""
        assert self.membership is not None
        members = self._members.get(id(item))  # by identity: two resources may share an id
        if members is None:
            members = self._members[id(item)] = self.membership.members(item.codes, item.label)
        return members

    def _matching(
        self, kind: str, items: Sequence[C], concept_set: ConceptSet
    ) -> list[tuple[C, Match]]:
        """The items in ``concept_set``, with how they match, in record order. The rules ask
        about dozens of value sets: the items' memberships are inverted once per call (value
        set -> items), so each question is a lookup, not a pass over the record."""
        if self.membership is None or not self.membership.covers(concept_set):
            return self._in_set(
                kind,
                concept_set,
                lambda: [(i, m) for i in items if (m := concept_set.match(i.codes, (i.label,)))],
            )
        key = ("by-set", kind)
        by_set: dict[str, list[tuple[C, Match]]] | None = self._derived.get(key)
        if by_set is None:
            by_set = {}
            for item in items:
                for set_id, matched in self._members_of(item).items():
                    by_set.setdefault(set_id, []).append((item, matched))
            self._derived[key] = by_set
        return list(by_set.get(concept_set.id, ()))  # a copy: callers may extend it

    def conditions_in(
        self, concept_set: ConceptSet, *, active_only: bool
    ) -> list[tuple[ConditionEntry, Match]]:
        """Counting conditions that match ``concept_set``; history includes resolved ones."""
        found: list[tuple[ConditionEntry, Match]] = self._matching(
            "conditions", self.conditions, concept_set
        )
        return [(c, m) for c, m in found if c.active] if active_only else found

    def refuted_in(self, concept_set: ConceptSet) -> list[tuple[ConditionEntry, Match]]:
        """Conditions in ``concept_set`` recorded as ruled out (verificationStatus refuted)."""
        return self._matching("refuted", self.refuted_conditions, concept_set)

    def medications_in(self, concept_set: ConceptSet) -> list[tuple[MedicationEntry, Match]]:
        """Current medications that match ``concept_set`` by code or by ingredient name."""
        return self._matching("medications", self.medications, concept_set)

    def allergies_in(self, concept_set: ConceptSet) -> list[tuple[AllergyEntry, Match]]:
        return self._matching("allergies", self.allergies, concept_set)

    def _in_set(
        self, kind: Hashable, concept_set: ConceptSet, compute: Callable[[], list[T]]
    ) -> list[T]:
        """A copy each time: callers may extend it."""
        return list(self._per_set(kind, concept_set, compute))

    def _per_set(self, kind: Hashable, concept_set: ConceptSet, compute: Callable[[], T]) -> T:
        """The rules ask the same question once per order: with 5,000 conditions and 20 orders
        that was 100,000 matches per value set (issue 12: 200 orders ran 78 s). Asked once per
        call; keyed by the set's identity, and the set kept beside its answer so that identity
        cannot pass to another set within the call."""
        key = ("per-set", kind, id(concept_set))
        kept = self._derived.get(key)
        if kept is None or kept[0] is not concept_set:
            kept = self._derived[key] = (concept_set, compute())
        found: T = kept[1]
        return found
