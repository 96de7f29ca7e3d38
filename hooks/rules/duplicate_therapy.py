"""duplicate-therapy: a new immune globulin order whose administrations overlap another immune
globulin order's (contract §7.5, §7.8).

The other order is a draft of this call outside the new order's course (at order-sign any two
drafts that are not one course: that catches an EHR that accepted a "create" without the matching
"delete"; at order-select one whose days overlap), or a current order on record (active,
on-hold) that still has administrations on or after the new order's first day, or a current order
by another route. A current order of the same product family, route and regimen whose last
administration comes before the new order is its continuation, not a duplicate. A subcutaneous
order with a current IV order is the IV → SC switch: scig-conversion's card says to stop the IV
order (one product card), so that pair is not named here. Checked once per course, on its lead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from hooks.context.model import IgHistory, IgOrder, MedicationOrder
from hooks.courses import Course, administration_days, course_of, record_days
from hooks.dosing import DAYS_PER_UNIT, DURATION_WORDS
from hooks.findings import Finding, Proposal, RemoveOrder
from hooks.knowledge_base import KnowledgeBase
from hooks.rules.base import ORDER_HOOKS, OrderInput, OrderRule, Reads
from hooks.rules.ig_therapy import COURSE_OBSERVATIONS, COURSE_THRESHOLDS, COURSE_VALUESETS
from hooks.rules.scig import switch_from
from hooks.text import record

TOPIC = "duplicate-therapy"
MAX_NAMED = 10  # a call of 200 drafts must not make a card of 200 lines


def family(order: IgOrder, kb: KnowledgeBase) -> str | None:
    """The product family (Octagam 5% and 10% are one); None: the product is not identified."""
    product = order.product
    if product is None:
        return None
    for entry in kb.catalogue.products:
        if entry.family and product.id in entry.members:
            return entry.id
    return product.id


def cadence(order: MedicationOrder) -> tuple[str, float | None]:
    """The regimen: an interval regimen and its days between doses, else daily or single."""
    repeat = order.dosages[0].repeat if order.dosages else None
    if repeat is None or repeat.period is None:
        return "single", None
    unit = (repeat.period_unit or "").strip().lower()
    factor = DAYS_PER_UNIT.get(DURATION_WORDS.get(unit, unit))
    if factor is None:
        return "unknown", None
    days = repeat.period * factor / (repeat.frequency or 1)
    return ("interval", days) if repeat.period * factor >= 7 else ("daily", None)


def continues(previous: IgHistory, order: IgOrder, kb: KnowledgeBase) -> bool:
    """Same product family (or both unidentified and named alike), route and regimen."""
    mine, theirs = family(order, kb), family(previous.order, kb)
    same_family = (
        mine == theirs
        if mine is not None or theirs is not None
        else order.label.strip().lower() == previous.order.label.strip().lower()
    )
    (kind, every), (their_kind, their_every) = cadence(order.order), cadence(previous.order.order)
    same_regimen = kind == their_kind and kind != "unknown"
    if same_regimen and every is not None and their_every is not None:
        same_regimen = abs(every - their_every) <= 1
    return same_family and same_regimen and previous.order.route == order.route


def first_day(course: Course, today: date) -> date:
    """The new orders' first administration; an undated draft starts today."""
    days = [m.days.first for m in course.orders if m.source != "record" and m.days.first]
    return min(days, default=today)


def _overlap(course: Course, draft: IgOrder) -> bool:
    """The draft's days meet the course's (an undated one may: absence of data is not absence
    of risk)."""
    days = administration_days(draft.order)
    mine = [m.days for m in course.orders if m.source != "record"]
    starts = [d.first for d in mine if d.first is not None]
    if days.first is None or len(starts) < len(mine):
        return True
    end = max(d.last or d.first for d in mine if d.first is not None)
    return days.first <= end and days.given_from(min(starts))


def _other_drafts(inp: OrderInput, course: Course) -> Iterator[tuple[IgOrder, str]]:
    """Drafts of the call outside the course; a pair is named once, on the later course's lead."""
    ctx = inp.ctx
    position = {d.reference: index for index, d in enumerate(ctx.ig_drafts)}
    lead_at = position.get(course.lead.reference, len(ctx.ig_drafts))
    focused = {o.reference: o for o in ctx.ig_orders}
    for draft in ctx.ig_drafts:
        if course.contains(draft.reference) or draft.reference == course.lead.reference:
            continue
        if draft.reference in focused:
            other = course_of(ctx, focused[draft.reference], inp.kb, inp.thresholds)
            if position.get(other.lead.reference, -1) > lead_at:
                continue  # the later course names this pair
        if ctx.hook == "order-sign":
            yield draft, "a draft of this call that is not part of this course"
        elif _overlap(course, draft):
            yield draft, "a draft of this call on the same days, not part of this course"


def _current(inp: OrderInput, course: Course) -> Iterator[tuple[IgHistory, str]]:
    """Current orders on record that overlap the course, by its lead's route and family."""
    ctx, lead = inp.ctx, course.lead
    drafts = {d.reference for d in ctx.ig_drafts} | {o.reference for o in ctx.ig_orders}
    switched = {h.order.reference for h in switch_from(inp)}
    start = first_day(course, ctx.today)
    for previous in ctx.current_ig:
        reference = previous.order.reference
        if reference in drafts or reference in switched or course.contains(reference):
            continue
        days = record_days(previous)
        if previous.order.route != lead.route:
            yield previous, f"a current {previous.order.route} order ({days.shown()})"
        elif days.given_from(start):
            authored = previous.authored or date.min
            if days.open_ended and authored < start and continues(previous, lead, inp.kb):
                continue  # a renewal of ongoing therapy: its continuation
            yield previous, f"a current order with administrations from {start} ({days.shown()})"


def check(inp: OrderInput) -> Finding | None:
    course = inp.course
    if not course.leads(inp.order):
        return None  # once per course, on its lead
    lines: list[str] = []
    proposals: list[Proposal] = []
    named: list[str] = []
    for draft, why in _other_drafts(inp, course):
        lines.append(f"{record(draft.reference)} {draft.product_name} {draft.route}: {why}")
        named.append(f"{draft.product_name} {draft.route}")
        proposals.append(
            Proposal(
                f"Remove the other {draft.product_name} draft",
                (
                    RemoveOrder(
                        draft.reference,
                        f"Remove {draft.product_name} {draft.route}: it duplicates "
                        f"{inp.order.product_name}",
                    ),
                ),
            )
        )
    for previous, why in _current(inp, course):
        lines.append(
            f"{record(previous.order.reference)} {previous.order.product_name} "
            f"{previous.order.route}, {record(previous.status)}: {why}"
        )
        named.append(f"{previous.order.product_name} {previous.order.route}")
    if not lines:
        return None
    if not proposals:  # only current orders on record: keep one, this draft by default
        proposals.append(
            Proposal(
                f"Remove this {inp.order.product_name} order",
                (
                    RemoveOrder(
                        inp.order.reference,
                        f"Remove {inp.order.product_name}: the current order continues",
                    ),
                ),
                recommended=True,
            )
        )
    if len(lines) > MAX_NAMED:
        lines = [*lines[:MAX_NAMED], f"... and {len(lines) - MAX_NAMED} more"]
    other = named[0] if len(named) == 1 else f"{len(named)} other immune globulin orders"
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=f"Duplicate immune globulin: {other} alongside this {inp.order.product_name} order",
        evidence=tuple(lines),
        recommendation=(
            "Two immune globulin orders for the same days add up to more than one dose. Keep one: "
            "remove the duplicate draft, or stop the current order this one replaces."
        ),
        proposals=tuple(proposals[:MAX_NAMED]),
    )


RULE = OrderRule(
    topic=TOPIC,
    hooks=ORDER_HOOKS,
    checks="duplicate immune globulin orders",
    fires_when=(
        "another immune globulin order overlaps the new one: a draft of the call outside its "
        "course (at order-sign any two drafts that are not one course), a current order with "
        "administrations on or after its first day, or a current order by another route; not a "
        "continuation (same family, route and regimen, last administration before it), not an "
        "IV → SC switch (scig-conversion)"
    ),
    indicator="`warning`",
    suggests="removal of the other draft; with only a current order on record, of this draft",
    reads=Reads(
        # the course (contract §7.4): its orders on record, their reasons, the dosing weight
        prefetch=frozenset({"medicationRequests", "medicationStatements", "observations"}),
        valuesets=COURSE_VALUESETS,
        observations=COURSE_OBSERVATIONS,
        knowledge=("dose-ranges.json", "indication-guidance.json"),
        thresholds=COURSE_THRESHOLDS,
    ),
    check=check,
)
