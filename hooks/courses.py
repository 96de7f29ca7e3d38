"""Courses (card contract §7.4): the immune globulin orders that are one course of treatment.

A course is every immune globulin order of the call (``draftOrders``, selected or not) or on
record (active, on-hold, completed) of the same route and indication, any product, whose
administration days fall in one window: the same or consecutive days, each order starting at most
``COURSE_GAP_DAYS`` after the course's last dose so far. An order without a reason takes the
call's reason (the one indication the call's drafts with a reason share). An order's days come
from ``timing.event``, else ``timing.repeat.boundsPeriod.start``, else the dispense validity
start (an order on record: else its ``authoredOn``); drafts with none of them are undated, and
the undated drafts of one route and indication form one course.

The course's dose is its total on the dosing weight: each order's administrations (one cycle of
an interval regimen) summed. Rules check a course once, on its lead order (the first in focus),
so five daily orders of 0.4 g/kg are one 2 g/kg course, not five 0.4 g/kg ones. Pure; computed
once per call (``ClinicalContext.derived``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Literal

from hooks.body_weight import dosing_weight
from hooks.context.model import (
    ClinicalContext,
    IgHistory,
    IgOrder,
    MedicationOrder,
    ObservationEntry,
    Repeat,
    Route,
)
from hooks.dosing import (
    DAYS_PER_UNIT,
    DURATION_WORDS,
    Dose,
    UnreadableDose,
    read_dose,
    strength_of,
)
from hooks.evidence import plain_number
from hooks.knowledge_base import KnowledgeBase, Thresholds
from hooks.rules.indications import indications_of
from hooks.text import record

COURSE_GAP_DAYS = 2  # a dose at most 2 days after the last one is the same course (§7.4)
ON_RECORD = frozenset({"active", "on-hold", "completed"})
MIN_STEP_DAYS = 1 / 1440  # more often than once a minute is not an administration schedule
MAX_SPAN_DAYS = 3660  # a hostile count or bound must not build a list of a million days
Source = Literal["focus", "draft", "record"]
IndicationKey = tuple[str, ...] | None  # the value sets (or codes) of the reason; None: no reason
# A second Kawasaki disease dose ``kawasaki_repeat_hours`` after the first is a repeat for
# persistent fever (AHA 2017): its own course, not added to the first (contract §8).
KAWASAKI = "kawasaki-disease"


@dataclass(frozen=True)
class Days:
    """When an order's administrations are."""

    first: date | None  # None: undated
    last: date | None  # the last administration; an open-ended regimen: its first
    listed: tuple[date, ...]  # every administration day (an open-ended regimen: the first)
    open_ended: bool  # an interval regimen with no count or end: more administrations follow
    basis: str  # where the days come from, for the evidence

    def given_from(self, day: date) -> bool:
        """An administration falls on or after ``day``: an open-ended regimen's always do, and an
        undated order's may (absence of data is not absence of risk)."""
        return self.first is None or self.open_ended or (self.last is not None and self.last >= day)

    def shown(self) -> str:
        if self.first is None:
            return "undated"
        span = (
            f"{self.first}" if self.last in (None, self.first) else f"{self.first} to {self.last}"
        )
        return f"{span}{', then ongoing' if self.open_ended else ''} ({self.basis})"


UNDATED = Days(None, None, (), False, "no timing.event, boundsPeriod or validity period")


def _duration_days(value: float | None, unit: str | None) -> float | None:
    if value is None:
        return None
    key = (unit or "").strip().lower()
    factor = DAYS_PER_UNIT.get(DURATION_WORDS.get(key, key))
    days = value * factor if factor else None
    return days if days is not None and 0 < days < math.inf else None


def _administrations(
    order: MedicationOrder, repeat: Repeat | None, start: date
) -> tuple[float, int, bool]:
    """(days between administrations, how many, open-ended) from ``timing.repeat`` and the
    supply, as the dose reader counts them (contract §6 "Dose")."""
    period = _duration_days(repeat.period, repeat.period_unit) if repeat else None
    if repeat is None or period is None:
        return 1.0, max(1, repeat.count or 1) if repeat else 1, False
    step = period / (repeat.frequency or 1)
    if not MIN_STEP_DAYS <= step < math.inf:  # 0, or a step so small 1/step overflows
        return 1.0, 1, False
    end = order.schedule.bounds_end
    bounds = (
        _duration_days(repeat.bounds.value, repeat.bounds.code or repeat.bounds.unit)
        if (repeat.bounds)
        else None
    )
    supply = order.supply_duration
    supply_days = _duration_days(supply.value, supply.code or supply.unit) if supply else None
    if repeat.count:
        count = repeat.count
    elif end is not None and end >= start:
        count = math.floor((end - start).days / step) + 1
    elif bounds:
        count = max(1, round(bounds / step))
    elif period < 7 and supply_days:
        count = max(1, round(supply_days / step))
    elif period < 7:
        count = max(1, round(1 / step))  # one day's worth
    else:
        return step, 1, True  # maintenance with no end: ongoing
    return step, max(1, count), False


def administration_days(order: MedicationOrder, fallback: date | None = None) -> Days:
    """The administration days of an order; ``fallback``: the day an order on record started
    when its timing names none (its ``authoredOn``)."""
    schedule = order.schedule
    if schedule.events:
        events = schedule.events
        return Days(events[0], events[-1], events, False, "timing.event")
    start, basis = schedule.bounds_start, "timing.repeat.boundsPeriod.start"
    if start is None:
        start, basis = schedule.validity_start, "dispenseRequest.validityPeriod.start"
    if start is None:
        start, basis = fallback, "authoredOn"
    if start is None:
        return UNDATED
    repeat = order.dosages[0].repeat if order.dosages else None
    step, count, open_ended = _administrations(order, repeat, start)
    # Only the days within MAX_SPAN_DAYS are listed, and never by counting out administrations
    # one by one: a count of 10^9, or 10^9 a day, once meant 10^9 turns (minutes for one order).
    within = min(count, math.floor(MAX_SPAN_DAYS / step) + 1)
    if step <= 1:  # one administration a day or more: every day up to the last
        offsets = list(range(min(math.floor((within - 1) * step), MAX_SPAN_DAYS) + 1))
    else:
        offsets = sorted({math.floor(i * step) for i in range(within)}) or [0]
    try:
        listed = tuple(start + timedelta(days=offset) for offset in offsets)
    except OverflowError:  # a date near year 9999
        listed = (start,)
    return Days(start, listed[-1], listed, open_ended, basis)


def record_days(history: IgHistory) -> Days:
    """The administration days of an order on record: its timing, else from its ``authoredOn``."""
    return administration_days(history.order.order, history.authored)


def last_administration(history: IgHistory) -> date | None:
    """The last administration of an order on record (contract §7.5): from its timing (events,
    bounds, count), else its ``authoredOn`` (an open-ended regimen's too)."""
    days = record_days(history)
    return history.authored if days.open_ended or days.last is None else days.last


# The orders a course's arithmetic lists one by one: a card must still show the sum of a
# 200-order course (issue 12), and the card lists at most card_builder.MAX_EVIDENCE_LINES.
LISTED_ORDERS = 10


@dataclass(frozen=True)
class CourseOrder:
    """An order of a course: where it comes from, its days and its dose."""

    order: IgOrder
    source: Source
    status: str
    days: Days
    dose: Dose | UnreadableDose
    position: int  # draftOrders order (orders on record after the drafts)

    @property
    def reference(self) -> str:
        return self.order.reference

    @property
    def in_focus(self) -> bool:
        return self.source == "focus"

    @property
    def grams(self) -> float | None:
        """What it adds to the course: every administration, or one cycle (interval)."""
        if not isinstance(self.dose, Dose):
            return None
        return self.dose.admin_g if self.dose.regimen == "interval" else self.dose.course_g

    @property
    def g_per_kg(self) -> float | None:
        if not isinstance(self.dose, Dose):
            return None
        dose = self.dose
        return dose.admin_g_per_kg if dose.regimen == "interval" else dose.course_g_per_kg

    @property
    def ordered_value(self) -> float | None:
        """The dose as ordered, per administration (g, or g/kg when ordered per kg)."""
        if not isinstance(self.dose, Dose):
            return None
        return self.dose.admin_g_per_kg if self.dose.per_kg else self.dose.admin_g

    @property
    def per_day_g_per_kg(self) -> float | None:
        """g/kg on each of its administration days: the administrations of a daily regimen
        spread over its days (two a day count twice); one cycle's dose for an interval one."""
        dose = self.dose
        if not isinstance(dose, Dose) or dose.admin_g_per_kg is None:
            return None
        if dose.regimen == "interval" or not self.days.listed:
            return dose.admin_g_per_kg
        return round(
            dose.admin_g_per_kg * max(1.0, dose.administrations / len(self.days.listed)), 6
        )

    def describe(self) -> str:
        where = {"focus": "in focus", "draft": "draft in this call", "record": ""}
        amount = (
            " = ".join(
                part
                for part in (
                    f"{plain_number(self.g_per_kg)} g/kg" if self.g_per_kg is not None else "",
                    f"{plain_number(self.grams)} g" if self.grams is not None else "",
                )
                if part
            )
            or "dose unknown"
        )
        source = record(self.status) if self.source == "record" else where[self.source]
        return (
            f"{record(self.reference)} {self.order.product_name} {self.order.route} "
            f"({source}; {self.days.shown()}): {amount}"
        )


@dataclass(frozen=True)
class Course:
    """Orders that are one course; ``orders``: the ones in focus first, each group by day."""

    route: Route
    indication: IndicationKey
    orders: tuple[CourseOrder, ...]
    weight_kg: float | None  # the dosing weight of the totals

    @property
    def lead(self) -> IgOrder:
        """The first order in focus: the course's findings are about it."""
        return self.orders[0].order

    def leads(self, order: IgOrder) -> bool:
        return order.reference == self.lead.reference

    @cached_property
    def references(self) -> frozenset[str]:
        return frozenset(member.reference for member in self.orders)

    def contains(self, reference: str) -> bool:
        return reference in self.references

    @property
    def in_focus(self) -> tuple[CourseOrder, ...]:
        return tuple(member for member in self.orders if member.in_focus)

    @property
    def days(self) -> tuple[date, ...]:
        return tuple(sorted({day for member in self.orders for day in member.days.listed}))

    @property
    def single_order(self) -> bool:
        """One order covers the whole regimen: no other order of the call or record shares it."""
        return len(self.orders) == 1

    @property
    def regimen(self) -> Literal["interval", "course"]:
        """An interval regimen is compared per cycle; anything else by the course total."""
        interval = all(
            isinstance(m.dose, Dose) and m.dose.regimen == "interval" for m in self.orders
        )
        return "interval" if interval else "course"

    @property
    def unreadable(self) -> tuple[CourseOrder, ...]:
        return tuple(m for m in self.orders if isinstance(m.dose, UnreadableDose))

    @cached_property
    def total_g(self) -> float | None:
        """Grams of the course; None when an order's grams are unknown."""
        return _sum(member.grams for member in self.orders)

    @cached_property
    def total_g_per_kg(self) -> float | None:
        """g/kg of the course on the dosing weight; None when an order's is unknown."""
        return _sum(member.g_per_kg for member in self.orders)

    @cached_property
    def known_g_per_kg(self) -> float:
        """The g/kg of the orders whose dose is known: at least this much is given."""
        return round(sum(m.g_per_kg for m in self.orders if m.g_per_kg is not None), 6)

    def at_least(self, g_per_kg: float) -> bool:
        return self.known_g_per_kg >= g_per_kg

    def on_weight(self, weight: ObservationEntry | None) -> Course:
        """The same orders with their doses read on another weight (the actual weight, where
        the course's is the adjusted one)."""
        if weight is None or weight.value == self.weight_kg:
            return self
        orders = tuple(replace(m, dose=read_dose(m.order.order, weight)) for m in self.orders)
        return replace(self, orders=orders, weight_kg=weight.value)

    @cached_property
    def day_totals(self) -> tuple[tuple[date, float, tuple[CourseOrder, ...]], ...]:
        """Each dated administration day: the g/kg its orders give that day, and the orders
        (several orders on one day add up). Orders whose days or g/kg are unknown are left out."""
        by_day: dict[date, list[CourseOrder]] = {}
        for member in self.orders:
            if member.per_day_g_per_kg is not None:
                for day in member.days.listed:
                    by_day.setdefault(day, []).append(member)
        return tuple(
            (day, round(sum(m.per_day_g_per_kg or 0.0 for m in members), 6), tuple(members))
            for day, members in sorted(by_day.items())
        )

    @cached_property
    def steps(self) -> tuple[str, ...]:
        """The arithmetic, in words: one order's own steps, or every order and the sum."""
        if self.single_order:
            dose = self.orders[0].dose
            return dose.steps if isinstance(dose, Dose) else ()
        lines = [f"Course of {len(self.orders)} orders, {self.route}:"]
        lines += [member.describe() for member in self.orders[:LISTED_ORDERS]]
        if len(self.orders) > LISTED_ORDERS:  # the sum below still counts every order
            lines.append(f"… and {len(self.orders) - LISTED_ORDERS} more orders of the course")
        what = "per cycle" if self.regimen == "interval" else "course total"
        figures = [
            f"{plain_number(self.total_g_per_kg)} g/kg" if self.total_g_per_kg is not None else "",
            f"{plain_number(self.total_g)} g" if self.total_g is not None else "",
        ]
        shown = " = ".join(f for f in figures if f) or "unknown (an order's dose is unknown)"
        lines.append(f"Sum ({what}): {shown}")
        return tuple(lines)


def _sum(values: Iterable[float | None]) -> float | None:
    found = list(values)
    if any(value is None for value in found):
        return None
    # Rounded to a microgram per kg so 0.4 × 5 is 2, not 1.9999999999999998.
    return round(sum(value for value in found if value is not None), 6)


def indication_key(
    order: MedicationOrder, ctx: ClinicalContext, kb: KnowledgeBase
) -> IndicationKey:
    """The indication an order's reason names: the indication value sets it matches; a reason
    that matches none is keyed by its codes and texts (two such orders share it only when they
    say the same). None: the order gives no reason."""
    if not order.has_reason:
        return None
    wanted = {r.valueset for r in kb.dose_ranges} | {g.valueset for g in kb.guidance}
    matched = {found.valueset for found in indications_of(order, ctx, kb.valuesets, wanted)}
    if matched:
        return tuple(sorted(matched))
    said = {f"{c.system}|{c.code}" for concept in order.reason_codes for c in concept.codes}
    said |= {text.lower() for concept in order.reason_codes for text in concept.texts}
    return tuple(sorted(said | set(order.reason_references)))


def courses_of(
    ctx: ClinicalContext, kb: KnowledgeBase, thresholds: Thresholds
) -> tuple[Course, ...]:
    """The courses of the call's orders in focus, in the order of their leads; once per call."""
    return _index(ctx, kb, thresholds).courses


@dataclass(frozen=True)
class _Index:
    kb: KnowledgeBase  # kept, so its id is not reused while the context lives
    courses: tuple[Course, ...]
    by_reference: dict[str, Course]  # every order of a course -> its course
    in_focus: frozenset[int]  # ids of the context's orders in focus


def _index(ctx: ClinicalContext, kb: KnowledgeBase, thresholds: Thresholds) -> _Index:
    def build() -> _Index:
        courses = _courses(ctx, ctx.ig_orders, kb, thresholds)
        by_reference = {ref: course for course in courses for ref in course.references}
        return _Index(kb, courses, by_reference, frozenset(id(o) for o in ctx.ig_orders))

    found = ctx.derived(("courses", id(kb), thresholds.window_weight_days), build)
    return found if found.kb is kb else build()


def course_of(
    ctx: ClinicalContext, order: IgOrder, kb: KnowledgeBase, thresholds: Thresholds
) -> Course:
    """The course of an order in focus. An order the context does not hold (a revised order being
    re-checked) takes the place of the draft with its reference."""
    index = _index(ctx, kb, thresholds)
    if id(order) in index.in_focus:
        return index.by_reference[order.reference]
    focus = (*(o for o in ctx.ig_orders if o.reference != order.reference), order)
    courses = _courses(ctx, focus, kb, thresholds, replacing=order)
    return next(course for course in courses if course.contains(order.reference))


def course_references(
    ctx: ClinicalContext, kb: KnowledgeBase, thresholds: Thresholds
) -> tuple[tuple[str, ...], ...]:
    """The references of the orders in focus of each course (what the card composer groups)."""
    return tuple(
        tuple(m.reference for m in course.in_focus) for course in courses_of(ctx, kb, thresholds)
    )


def _members(
    ctx: ClinicalContext,
    focus: tuple[IgOrder, ...],
    kb: KnowledgeBase,
    thresholds: Thresholds,
    replacing: IgOrder | None,
) -> list[tuple[IndicationKey, CourseOrder]]:
    weight = dosing_weight(
        ctx, kb, thresholds
    )  # adjusted in obesity, as the dosing-weight rule doses
    drafts = [
        replacing if replacing is not None and d.reference == replacing.reference else d
        for d in ctx.ig_drafts
    ]
    drafts += [o for o in focus if not any(o.reference == d.reference for d in drafts)]
    in_focus = {o.reference for o in focus}
    found: list[tuple[IndicationKey, CourseOrder]] = []
    for position, draft in enumerate(drafts):
        source: Source = "focus" if draft.reference in in_focus else "draft"
        member = CourseOrder(
            draft,
            source,
            draft.order.status or "draft",
            administration_days(draft.order),
            read_dose(draft.order, weight, strength_of(draft)),
            position,
        )
        found.append((indication_key(draft.order, ctx, kb), member))
    seen = {d.reference for d in drafts}
    for index, earlier in enumerate(ctx.ig_history):
        if earlier.status not in ON_RECORD or earlier.order.reference in seen:
            continue  # a draft the record also holds is the draft
        member = CourseOrder(
            earlier.order,
            "record",
            earlier.status,
            record_days(earlier),
            read_dose(earlier.order.order, weight, strength_of(earlier.order)),
            len(drafts) + index,
        )
        found.append((indication_key(earlier.order.order, ctx, kb), member))
    reasons = {key for key, member in found if member.source != "record" and key is not None}
    call_reason = next(iter(reasons)) if len(reasons) == 1 else None
    return [(call_reason if key is None else key, member) for key, member in found]


def _courses(
    ctx: ClinicalContext,
    focus: tuple[IgOrder, ...],
    kb: KnowledgeBase,
    thresholds: Thresholds,
    replacing: IgOrder | None = None,
) -> tuple[Course, ...]:
    weight = dosing_weight(
        ctx, kb, thresholds
    )  # adjusted in obesity, as the dosing-weight rule doses
    groups: dict[tuple[Route, IndicationKey], list[CourseOrder]] = {}
    for key, member in _members(ctx, focus, kb, thresholds, replacing):
        groups.setdefault((member.order.route, key), []).append(member)
    found: list[Course] = []
    for (route, key), members in groups.items():
        repeat_hours = thresholds.kawasaki_repeat_hours if key and KAWASAKI in key else None
        for together in _windows(members, repeat_hours):
            if any(member.in_focus for member in together):
                found.append(
                    Course(route, key, _ordered(together), weight.value if weight else None)
                )
    return tuple(sorted(found, key=lambda course: course.orders[0].position))


def _windows(
    members: list[CourseOrder], repeat_hours: float | None = None
) -> list[list[CourseOrder]]:
    """Members of one route and indication split into course windows: the undated drafts are one
    course; dated orders join the course whose last dose is at most COURSE_GAP_DAYS before.
    ``repeat_hours`` (Kawasaki disease): a dose at least that long after a first, single dose
    starts its own course, once (the second dose; a third joins it)."""
    undated = [m for m in members if m.days.first is None and m.source != "record"]
    dated = sorted(
        (m for m in members if m.days.first is not None), key=lambda m: (m.days.first, m.position)
    )
    windows: list[list[CourseOrder]] = [undated] if undated else []
    current: list[CourseOrder] = []
    last: date | None = None
    repeated = False  # the current window is already a repeat dose's
    for member in dated:
        first = member.days.first
        assert first is not None
        joins = bool(current) and last is not None and (first - last).days <= COURSE_GAP_DAYS
        repeat = (
            joins
            and repeat_hours is not None
            and not repeated
            and _repeat_dose(current, member, repeat_hours)
        )
        if joins and not repeat:
            current.append(member)
        else:
            current = [member]
            windows.append(current)
            last = None
            repeated = repeat
        own_last = member.days.last or first
        last = own_last if last is None else max(last, own_last)
    return windows


def _repeat_dose(earlier: list[CourseOrder], member: CourseOrder, hours: float) -> bool:
    """``member`` is a second dose at least ``hours`` after a first, single administration: by
    the times of ``timing.event``, else, with dates only, however the times of those days fall."""
    if len(earlier) != 1 or len(earlier[0].days.listed) != 1 or member.days.first is None:
        return False
    first = earlier[0]
    if isinstance(first.dose, Dose) and first.dose.administrations != 1:
        return False
    start, end = _event_time(first), _event_time(member)
    try:
        latest_first = start or _utc_day(first.days.listed[0] + timedelta(days=1))
    except OverflowError:  # a date near year 9999
        return False
    earliest_second = end or _utc_day(member.days.first)
    return (earliest_second - latest_first) >= timedelta(hours=hours)


def _utc_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _event_time(member: CourseOrder) -> datetime | None:
    """The time of the order's first ``timing.event``, when the record gives one (a date alone
    gives none)."""
    for dosage in member.order.order.raw.get("dosageInstruction") or []:
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        events = timing.get("event") if isinstance(timing, dict) else None
        if isinstance(events, list) and events and isinstance(events[0], str):
            text = events[0]
            if len(text) <= 10:
                return None
            try:
                found = datetime.fromisoformat(text)
            except ValueError:
                return None
            return found if found.tzinfo else found.replace(tzinfo=UTC)
    return None


def _ordered(members: list[CourseOrder]) -> tuple[CourseOrder, ...]:
    def by_day(member: CourseOrder) -> tuple[date, int]:
        return member.days.first or date.max, member.position

    focus = sorted((m for m in members if m.in_focus), key=by_day)
    others = sorted((m for m in members if not m.in_focus), key=by_day)
    return (*focus, *others)
