"""plasma-exchange-sequencing: plasma exchange removes the immune globulin given before it
(EAN/PNS GBS 2023; MSD; card contract §8 "Plasma exchange").

It fires when an exchange is scheduled within ``plex_after_ivig_days`` (14, site setting) after an
immune globulin administration: some exchange day falls from the first administration to the last
plus the window (a current maintenance regimen with no end: within the window after its last dose
on or before that day). Immune globulin given after the last exchange (the sequence the guidelines
allow) is silent. Dates:

- an exchange (a plasma-exchange ServiceRequest of the session, selected or not; a plasma-exchange
  Procedure on record): every day ``occurrence[x]`` names; undated, the day it was ordered
  (``authoredOn``; a draft without one: today);
- immune globulin: each order's administration days (``hooks.courses``: its timing, else from its
  ``authoredOn`` and the regimen's count, so ``authoredOn`` + the course days; a draft without
  either: from today). MedicationAdministration is not read (the context does not read it).

Silent for transplant rejection and desensitisation protocols, where exchange and immune globulin
are given together by design: the immune globulin order's reason or the exchange's says so (or,
when neither gives a reason, an active condition does); matched by text, no code being known.

What it says follows the immune globulin's indication (its reason; without one the patient's only
active immune globulin indication; else the exchange's reason), citing that indication's guideline
(``indication-guidance.json``, the statement marked ``plasma_exchange_first``; CIDP:
``dose-ranges.json``): for anti-GBM disease, plasma exchange is the guideline therapy and immune
globulin is not: review or remove the immune globulin (a removal of each immune globulin order
that can still be removed), never the exchange. For GBS, MG, CIDP, autoimmune encephalitis and any
other indication: "choose one, or give immune globulin after the last exchange", with no removal.

Two entry points, each pair said once: an immune globulin order in focus (its course, against
every exchange), and a plasma-exchange order in focus (against the immune globulin that is not in
focus: other drafts and the record).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from hooks.context.model import ClinicalContext, IgHistory, IgOrder, SessionOrder
from hooks.context.read import Concept
from hooks.courses import administration_days, record_days
from hooks.dosing import DAYS_PER_UNIT, DURATION_WORDS
from hooks.evidence import plain_number
from hooks.findings import Finding, Proposal, RemoveOrder
from hooks.knowledge_base import KnowledgeBase
from hooks.rules import ig_therapy
from hooks.rules.base import (
    ORDER_HOOKS,
    OrderInput,
    OrderRule,
    PlasmaExchangeInput,
    PlasmaExchangeRule,
    Reads,
)
from hooks.rules.indications import indications_of
from hooks.text import NOT_CHECKED, record

TOPIC = "plasma-exchange-sequencing"
EXEMPT = "transplant-rejection-desensitisation"
ANTI_GBM = "anti-gbm-disease"
# The indications whose guideline the card cites, in the order they are looked for.
INDICATIONS = (
    ANTI_GBM,
    "guillain-barre-syndrome",
    "myasthenia-gravis",
    "cidp",
    "autoimmune-encephalitis",
)
REMOVABLE = frozenset({"active", "on-hold", "draft"})  # an order whose doses are still to come


@dataclass(frozen=True)
class Exchange:
    reference: str
    label: str
    days: tuple[date, ...]
    basis: str  # where the days come from
    reason_codes: tuple[Concept, ...] = ()
    reason_references: tuple[str, ...] = ()

    def shown(self) -> str:
        span = str(self.days[0]) if len(self.days) == 1 else f"{self.days[0]} to {self.days[-1]}"
        return f"{record(self.reference)}: {self.label}, {span} ({self.basis})"


@dataclass(frozen=True)
class Infusion:
    """One immune globulin order's administrations."""

    order: IgOrder
    status: str
    first: date
    last: date
    basis: str
    # A current maintenance regimen with no end: days between doses (its doses go on)
    every: float | None = None

    def last_dose_by(self, day: date) -> date | None:
        """The last administration on or before ``day`` (None: none by then)."""
        if day < self.first:
            return None
        if self.every is None:
            return min(self.last, day)
        doses = math.floor((day - self.first).days / self.every)
        return self.first + timedelta(days=math.floor(doses * self.every))

    def shown(self) -> str:
        if self.every is not None:
            return (
                f"{record(self.order.reference)}: {self.order.product_name} "
                f"({record(self.status)}), every {plain_number(self.every)} days from "
                f"{self.first}, no end ({self.basis})"
            )
        span = str(self.first) if self.first == self.last else f"{self.first} to {self.last}"
        return (
            f"{record(self.order.reference)}: {self.order.product_name} "
            f"({record(self.status)}), {span} ({self.basis})"
        )


@dataclass(frozen=True)
class Conflict:
    infusion: Infusion
    exchange: Exchange
    day: date  # the first exchange day that falls in the window
    last_dose: date  # the infusion's last administration on or before that day


def _label(order: SessionOrder) -> str:
    code = order.code
    if code is None:
        return "plasma exchange"
    return record(code.texts[0]) if code.texts else (code.codes[0].label() if code.codes else "")


def _session_exchange(order: SessionOrder, today: date) -> Exchange:
    if order.occurrence:
        return Exchange(
            order.reference,
            _label(order),
            order.occurrence,
            "occurrence",
            order.reason_codes,
            order.reason_references,
        )
    day = order.authored or today
    basis = f"no date given: ordered {day}" if order.authored else "no date given: ordered now"
    return Exchange(
        order.reference, _label(order), (day,), basis, order.reason_codes, order.reason_references
    )


def exchanges(ctx: ClinicalContext, kb: KnowledgeBase) -> list[Exchange]:
    """Every plasma exchange of the session (selected or not) and of the record, with its days."""
    found = [_session_exchange(o, ctx.today) for o in ctx.plasma_exchanges_in_session]
    plex = kb.valueset("plasma-exchange")
    found += [
        Exchange(p.reference, record(p.label), (p.date,), f"procedure, {record(p.status)}")
        for p in ctx.procedures
        if p.date is not None and ctx.match(p, plex)
    ]
    return found


def plasma_exchange_known(ctx: ClinicalContext, kb: KnowledgeBase) -> list[str]:
    """Plasma exchange in this session's orders, or as a procedure in the record."""
    lines = [
        f"{record(order.reference)}: {_label(order)} (ordered in this session)"
        for order in ctx.plasma_exchanges_in_session
    ]
    plex = kb.valueset("plasma-exchange")
    lines += [
        f"{record(p.reference)}: {record(p.label)} ({record(p.status)}, {p.date})"
        for p in ctx.procedures
        if plex.match(p.codes, (p.label,))
    ]
    return lines


def _draft_infusion(order: IgOrder, today: date) -> Infusion:
    fallback = order.order.authored or today
    days = administration_days(order.order, fallback)
    first = days.first or fallback
    basis = days.basis if days.basis != "authoredOn" else f"no date given: from {fallback}"
    return Infusion(order, order.order.status or "draft", first, days.last or first, basis)


def _record_infusions(ctx: ClinicalContext) -> list[Infusion]:
    found = []
    for history in ig_therapy.previous_orders(ctx):
        days = record_days(history)
        if days.first is None:
            continue  # no timing and no authoredOn: when it was given is unknown
        every = _interval(history) if days.open_ended and history.current else None
        found.append(
            Infusion(
                history.order,
                history.status,
                days.first,
                days.last or days.first,
                days.basis,
                every,
            )
        )
    return found


def _interval(history: IgHistory) -> float | None:
    """Days between the doses of a maintenance regimen (``timing.repeat``), if readable."""
    dosages = history.order.order.dosages
    repeat = dosages[0].repeat if dosages else None
    if repeat is None or repeat.period is None:
        return None
    unit = (repeat.period_unit or "").strip().lower()
    factor = DAYS_PER_UNIT.get(DURATION_WORDS.get(unit, unit))
    days = repeat.period * factor / (repeat.frequency or 1) if factor else None
    return days if days is not None and 1 <= days < math.inf else None


def conflicts(
    infusions: Iterable[Infusion], exchanges_: Sequence[Exchange], window: int
) -> list[Conflict]:
    """Each (infusion, exchange) whose exchange falls from the infusion's first administration to
    ``window`` days after its last."""
    found = []
    for infusion in infusions:
        for exchange in exchanges_:
            for day in exchange.days:
                dose = infusion.last_dose_by(day)
                if dose is not None and (day - dose).days <= window:
                    found.append(Conflict(infusion, exchange, day, dose))
                    break
    return found


def _exempt(ctx: ClinicalContext, kb: KnowledgeBase, found: Sequence[Conflict]) -> list[str]:
    """Why these are a transplant-rejection or desensitisation protocol, if they are."""
    concept_set = kb.valueset(EXEMPT)
    lines: list[str] = []
    conditions = {c.reference: c for c in ctx.conditions}
    gave_reason = False
    for conflict in found:
        ig = conflict.infusion.order.order
        reasons = (*ig.reason_codes, *conflict.exchange.reason_codes)
        references = (*ig.reason_references, *conflict.exchange.reason_references)
        gave_reason = gave_reason or bool(reasons or references)
        for reason in reasons:
            if concept_set.match(reason.codes, reason.texts):
                lines.append(f"reason: {record(reason.label)}")
        for reference in references:
            condition = conditions.get(reference)
            if condition is not None and ctx.match(condition, concept_set):
                lines.append(f"{record(condition.reference)}: {record(condition.label)}")
    if not gave_reason:
        lines += [
            f"{record(c.reference)}: {record(c.label)} (active condition)"
            for c, _ in ctx.conditions_in(concept_set, active_only=True)
        ]
    return list(dict.fromkeys(lines))


def _indication(ctx: ClinicalContext, kb: KnowledgeBase, found: Sequence[Conflict]) -> str | None:
    """The indication whose guideline the card cites: the immune globulin's, else the
    exchange's reason."""
    named: set[str] = set()
    for conflict in found:
        ig = conflict.infusion.order.order
        wanted = {r.valueset for r in kb.dose_ranges} | {g.valueset for g in kb.guidance}
        matched = {f.valueset for f in indications_of(ig, ctx, kb.valuesets, wanted)}
        if ig.has_reason or len(matched) == 1:
            named |= matched & set(INDICATIONS)
    if not named:
        for conflict in found:
            for reason in conflict.exchange.reason_codes:
                named |= {
                    name
                    for name in INDICATIONS
                    if kb.valueset(name).match(reason.codes, reason.texts)
                }
    return next((name for name in INDICATIONS if name in named), None)


def _citation(kb: KnowledgeBase, indication: str | None) -> tuple[str | None, tuple[str, str]]:
    """The statement and source the card cites for the indication (None: the topic's own)."""
    for item in kb.guidance:
        if item.valueset != indication:
            continue
        for statement in item.statements:
            if statement.plasma_exchange_first:
                flag = f" ({NOT_CHECKED})" if statement.unverified else ""
                text = f"{item.display}: {statement.text} [{statement.source.label}]{flag}"
                return text, (statement.source.label, statement.source.url or "")
    for dose_range in kb.dose_ranges:
        if dose_range.valueset == indication:
            source = dose_range.source
            return None, (source.label, source.url or "")
    return None, ("", "")


def _finding(
    ctx: ClinicalContext,
    kb: KnowledgeBase,
    found: Sequence[Conflict],
    window: int,
    removable: Sequence[IgOrder],
) -> Finding | None:
    if not found or _exempt(ctx, kb, found):
        return None
    indication = _indication(ctx, kb, found)
    cited, source = _citation(kb, indication)
    latest = max(found, key=lambda c: c.last_dose)
    during = latest.day < latest.infusion.last and latest.infusion.every is None
    gap = (latest.day - latest.last_dose).days
    when = (
        "during the immune globulin course"
        if during
        else "on the day of the last immune globulin dose"
        if gap == 0
        else f"{gap} days after the last immune globulin dose"
    )
    lines = [
        *dict.fromkeys(f"Immune globulin: {c.infusion.shown()}" for c in found),
        *dict.fromkeys(f"Plasma exchange: {c.exchange.shown()}" for c in found),
        (
            f"Plasma exchange {latest.day} falls within the immune globulin course "
            f"({latest.infusion.first} to {latest.infusion.last})"
            if during
            else f"Plasma exchange {latest.day} − last immune globulin dose before it "
            f"{latest.last_dose} = {gap} days (flagged up to {window} days after a dose)"
        ),
    ]
    if cited:
        lines.append(cited)
    if indication == ANTI_GBM:
        summary = "Anti-GBM disease: plasma exchange would remove the immune globulin; review it"
        recommendation = (
            "Plasma exchange, with cyclophosphamide and glucocorticoids, is the treatment of "
            "anti-GBM disease (KDIGO 2021); immune globulin is not, and the exchange would remove "
            "it. Keep the plasma exchange; review the immune globulin order, or remove it."
        )
        proposals = tuple(
            Proposal(
                f"Remove the {order.product_name} order (keep the plasma exchange)",
                (
                    RemoveOrder(
                        order.reference,
                        f"Remove {order.product_name}: plasma exchange would remove it",
                    ),
                ),
                recommended=True,
            )
            for order in removable
        )
    else:
        summary = f"Plasma exchange {when}: the exchange would remove the immune globulin"
        recommendation = (
            "Plasma exchange removes the immune globulin given before it. Choose one "
            "treatment, or give the immune globulin after the last exchange."
        )
        proposals = ()
    return Finding(
        topic=TOPIC,
        indicator="warning",
        summary=summary,
        evidence=tuple(lines),
        recommendation=recommendation,
        proposals=proposals,
        source=source if source[0] else None,
    )


def check(inp: OrderInput) -> Finding | None:
    """An immune globulin order in focus (its course, once, on its lead order) against every
    plasma exchange of the session and the record."""
    if not inp.course.leads(inp.order):
        return None
    ctx, window = inp.ctx, inp.thresholds.plex_after_ivig_days
    found_exchanges = exchanges(ctx, inp.kb)
    if not found_exchanges:
        return None
    infusions = [
        Infusion(
            member.order, member.status, member.days.first, member.days.last, member.days.basis
        )
        if member.days.first and member.days.last
        else _draft_infusion(member.order, ctx.today)
        for member in inp.course.orders
    ]
    found = conflicts(infusions, found_exchanges, window)
    removable = [member.order for member in inp.course.in_focus]
    return _finding(ctx, inp.kb, found, window, removable)


def check_plasma_exchange_order(inp: PlasmaExchangeInput) -> Finding | None:
    """A plasma-exchange order in focus against the immune globulin not in focus: the call's
    other drafts and the record (immune globulin in focus is the other entry point's)."""
    ctx, window = inp.ctx, inp.thresholds.plex_after_ivig_days
    exchange = _session_exchange(inp.order, ctx.today)
    focus = {o.reference for o in ctx.ig_orders}
    infusions = [_draft_infusion(d, ctx.today) for d in ctx.ig_drafts if d.reference not in focus]
    infusions += _record_infusions(ctx)
    found = conflicts(infusions, [exchange], window)
    removable: dict[str, IgOrder] = {
        c.infusion.order.reference: c.infusion.order
        for c in found
        if c.infusion.status in REMOVABLE and c.infusion.order.reference not in focus
    }
    return _finding(ctx, inp.kb, found, window, list(removable.values()))


FIRES_WHEN = (
    "a plasma exchange (CPT 36514 or plasma-exchange text; a draft of the call or a procedure "
    "on record) scheduled, or undated and ordered, during an immune globulin course or within "
    "14 days after its last administration (a current maintenance regimen: its last dose "
    "before the exchange); not when the immune globulin follows the last exchange, nor for "
    "transplant rejection or desensitisation (matched by text)"
)
SUGGESTS = (
    "anti-GBM disease: removal of the immune globulin order (`resourceId`), never of the "
    "exchange; otherwise none (choose one, or give immune globulin after the last exchange)"
)
READS = Reads(
    prefetch=frozenset({"conditions", "procedures"}) | ig_therapy.THERAPY_PREFETCH,
    valuesets=("plasma-exchange", EXEMPT, *INDICATIONS, *ig_therapy.COURSE_VALUESETS),
    procedure_codes=("plasma-exchange",),
    thresholds=("plex_after_ivig_days",),
    knowledge=ig_therapy.COURSE_KNOWLEDGE,
)

RULES = (
    OrderRule(
        topic=TOPIC,
        hooks=ORDER_HOOKS,
        checks="plasma exchange scheduled soon after the immune globulin ordered",
        reads=Reads(
            prefetch=READS.prefetch | {"observations"},
            valuesets=READS.valuesets,
            observations=ig_therapy.COURSE_OBSERVATIONS,
            procedure_codes=READS.procedure_codes,
            thresholds=(*READS.thresholds, *ig_therapy.COURSE_THRESHOLDS),
            knowledge=READS.knowledge,
        ),
        check=check,
        fires_when=FIRES_WHEN,
        indicator="`warning`",
        suggests=SUGGESTS,
    ),
    PlasmaExchangeRule(
        topic=TOPIC,
        hooks=ORDER_HOOKS,
        checks="a plasma-exchange order soon after immune globulin",
        reads=READS,
        check=check_plasma_exchange_order,
        fires_when=FIRES_WHEN,
        indicator="`warning`",
        suggests=SUGGESTS,
    ),
)
