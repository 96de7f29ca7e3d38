"""The shadow report: the cards shadow mode (``IVIG_CDS_MODE=shadow``) would have shown.

Counting rules:

- **Which cards.** Rows of ``issued_card`` with ``mode = 'shadow'`` issued in ``[since, until)``
  (UTC) and not suppressed: a suppressed card is one the order-sign answer would have left out
  (order-select's shadow card said it already), so it would not have been shown either.
- **Per card group and indicator** (the group from the topic code, as in the feedback report):
  ``cards``; ``patients``, the distinct pseudonymous patient keys (a card without a key is not
  counted there; ``cards_without_patient`` says how many); ``calls``, the distinct hook calls
  that made such a card (the ``hook_call`` rows listing it: not the hookInstance, which a client
  may reuse, nor the time, which two calls may share); ``examples``, up to three distinct card
  summaries, most recent first.
- **Totals**: the same over all those cards (a patient or call counts once however many groups
  it appears in), and ``calls_recorded``: every shadow hook call recorded in the period
  (``hook_call``), with or without cards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from cds_service.feedback import hook_calls, issued_cards
from cds_service.reports import common

EXAMPLES = 3


@dataclass(frozen=True)
class ShadowRow:
    group: str
    group_display: str
    indicator: str
    cards: int
    patients: int
    cards_without_patient: int
    calls: int
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShadowTotals:
    cards: int
    patients: int
    cards_without_patient: int
    calls: int  # calls that made at least one card
    calls_recorded: int  # every shadow call in the period


@dataclass(frozen=True)
class ShadowReport:
    since: datetime
    until: datetime
    totals: ShadowTotals
    rows: tuple[ShadowRow, ...] = field(default=())


@dataclass
class _Tally:
    cards: int = 0
    patients: set[str] = field(default_factory=set)
    without_patient: int = 0
    calls: set[object] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)

    def add(self, row: Any, call: object) -> None:
        self.cards += 1
        if row.patient_key:
            self.patients.add(row.patient_key)
        else:
            self.without_patient += 1
        self.calls.add(call)
        summary = row.summary
        if summary and summary not in self.examples and len(self.examples) < EXAMPLES:
            self.examples.append(summary)


def shadow_report(
    engine: Engine, since: datetime, until: datetime, groups: Mapping[str, str]
) -> ShadowReport:
    """The shadow cards of ``[since, until)`` per card group and indicator (see the module
    docstring); ``groups``: card group code -> display (card-groups.json)."""
    start, end = common.utc(since), common.utc(until)
    card = issued_cards.c
    query = (
        select(
            card.uuid,
            card.service_id,
            card.hook_instance,
            card.issued_at,
            card.topic,
            card.indicator,
            card.patient_key,
            card.summary,
        )
        .where(
            card.mode == "shadow",
            card.issued_at >= start,
            card.issued_at < end,
            card.suppressed.is_not(True),
        )
        .order_by(card.issued_at.desc(), card.uuid)  # most recent first, for the examples
    )
    recorded = select(hook_calls.c.id, hook_calls.c.cards).where(
        hook_calls.c.mode == "shadow", hook_calls.c.called_at >= start, hook_calls.c.called_at < end
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        calls = connection.execute(recorded).all()
    call_of: dict[str, object] = {
        entry["uuid"]: call.id for call in calls for entry in json.loads(call.cards)
    }
    total = _Tally()
    tallies: dict[tuple[str, str], _Tally] = {}
    for row in rows:
        # Every card is listed by its call; the fallback only guards a hand-edited database.
        call = call_of.get(row.uuid, (row.service_id, row.hook_instance, row.issued_at))
        total.add(row, call)
        key = (common.card_group(row.topic, groups), row.indicator)
        tallies.setdefault(key, _Tally()).add(row, call)
    group_rank = _ranks(common.group_order({group for group, _ in tallies}, groups))
    indicator_rank = _ranks(common.indicator_order({indicator for _, indicator in tallies}))
    keys = sorted(tallies, key=lambda key: (group_rank[key[0]], indicator_rank[key[1]]))
    return ShadowReport(
        start,
        end,
        ShadowTotals(
            total.cards,
            len(total.patients),
            total.without_patient,
            len(total.calls),
            len(calls),
        ),
        tuple(
            ShadowRow(
                group,
                common.group_display(group, groups),
                indicator,
                tallies[group, indicator].cards,
                len(tallies[group, indicator].patients),
                tallies[group, indicator].without_patient,
                len(tallies[group, indicator].calls),
                tuple(tallies[group, indicator].examples),
            )
            for group, indicator in keys
        ),
    )


def _ranks(values: list[str]) -> dict[str, int]:
    return {value: rank for rank, value in enumerate(values)}


def to_json(report: ShadowReport) -> str:
    """``{"period": {"since", "until"}, "totals": {...}, "rows": [{group, group_display,
    indicator, cards, patients, cards_without_patient, calls, examples}]}``."""
    data = {
        "period": {"since": report.since.isoformat(), "until": report.until.isoformat()},
        "totals": asdict(report.totals),
        "rows": [asdict(row) | {"examples": list(row.examples)} for row in report.rows],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def to_text(report: ShadowReport) -> str:
    """What a person reads in a terminal: the totals, then each card group with a line per
    indicator and its example summaries."""
    totals = report.totals
    lines = [
        f"Shadow mode, {common.period_text(report.since, report.until)}",
        "",
    ]
    if not report.rows:
        lines.append(
            f"No shadow card in this period ({_plural(totals.calls_recorded, 'shadow call')} "
            "recorded)."
        )
        return "\n".join(lines) + "\n"
    lines.append(
        f"Cards shadow mode would have shown: {totals.cards}, on {totals.calls} of "
        f"{_plural(totals.calls_recorded, 'shadow call')}, about "
        f"{_plural(totals.patients, 'patient')}"
        + (
            f" ({_plural(totals.cards_without_patient, 'card')} with no patient key)"
            if totals.cards_without_patient
            else ""
        )
        + "."
    )
    width = max(len(row.indicator) for row in report.rows)
    group = None
    for row in report.rows:
        if row.group != group:
            group = row.group
            title = (
                row.group_display
                if row.group_display == row.group
                else (f"{row.group_display} ({row.group})")
            )
            lines += ["", title]
        unknown = (
            f", {row.cards_without_patient} without patient key"
            if row.cards_without_patient
            else ""
        )
        lines.append(
            f"  {row.indicator:<{width}}  {_plural(row.cards, 'card')}, "
            f"{_plural(row.patients, 'patient')}{unknown}, {_plural(row.calls, 'call')}"
        )
        lines += [f"  {'':<{width}}    e.g. {_one_line(example)}" for example in row.examples]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """A summary on one terminal line, control characters out."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())
