"""The feedback report: the live cards shown in a period and what came of them.

Counting rules:

- **Which cards.** Rows of ``issued_card`` issued in ``[since, until)`` (``issued_at``, UTC) that
  were shown: live (``mode`` NULL, from before the column, or ``'live'``; shadow cards were never
  shown) and not suppressed (``suppressed`` NULL or false; a suppressed card was made at
  order-sign but left out of the answer because order-select showed it, and that order-select
  card is the one counted).
- **One outcome per card.** A card's latest feedback item decides: the one with the latest
  ``outcome_timestamp`` (ties: the later received, then the later stored). ``accepted`` or
  ``overridden``; a card without feedback was **ignored**. Feedback counts whenever it arrived:
  the period selects cards, not feedback.
- **Reasons.** An overridden card counts once under the reason of its latest item, by coding
  (system and code), shown with the display the EHR sent most often for it (else the code); an
  override without a coded reason (a comment only) is "no reason given".
- **Figures.** Shown, accepted, overridden (and by reason), ignored (shown - accepted -
  overridden) and the override rate (overridden / shown; none when nothing was shown), for the
  totals and per value of each dimension: card ``group`` (from the topic code: ``IVIG`` + group
  code + indicator + optional ``NEWFACTOR``, the longest matching group code; a topic matching no
  group is its own group), ``topic`` code, ``indicator``, ``hook`` ("(unknown)" on rows stored
  before the column), ``service`` id and ISO ``week`` of issue (Monday to Sunday, UTC:
  ``2026-W48``). Each card counts once in every dimension, so each dimension sums to the totals.

One query reads the (card, latest outcome) rows (a window function picks the latest feedback);
the figures are tallied in Python. Renderers: ``to_json``, ``to_csv`` and ``to_html`` (one
standalone page; its charts need matplotlib, the ``reports`` extra).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from cds_service.feedback import feedback, issued_cards
from cds_service.reports import common

DIMENSIONS = ("group", "topic", "indicator", "hook", "service", "week")
DIMENSION_TITLES = {
    "group": "Card group",
    "topic": "Topic code",
    "indicator": "Indicator",
    "hook": "Hook",
    "service": "Service",
    "week": "Week",
}
NO_REASON = "no reason given"
_Coding = tuple[str | None, str | None]  # an override reason: (system, code)


@dataclass(frozen=True)
class Reason:
    """Overridden cards under one override reason (``code`` None: no reason given)."""

    system: str | None
    code: str | None
    display: str
    overridden: int


@dataclass(frozen=True)
class Figures:
    """The counts for the totals or for one value of a dimension (``label``: what to show)."""

    value: str
    label: str
    shown: int
    accepted: int
    overridden: int
    reasons: tuple[Reason, ...] = ()

    @property
    def ignored(self) -> int:
        return self.shown - self.accepted - self.overridden

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.shown if self.shown else None


@dataclass(frozen=True)
class FeedbackReport:
    since: datetime
    until: datetime
    totals: Figures
    dimensions: Mapping[str, tuple[Figures, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Outcome:
    """One shown card and its latest outcome (None: ignored)."""

    keys: Mapping[str, str]  # dimension -> value
    outcome: str | None
    reason: _Coding  # (system, code)
    display: str | None


class _Tally:
    def __init__(self) -> None:
        self.shown = self.accepted = self.overridden = 0
        self.reasons: Counter[_Coding] = Counter()

    def add(self, card: _Outcome) -> None:
        self.shown += 1
        if card.outcome == "accepted":
            self.accepted += 1
        elif card.outcome == "overridden":
            self.overridden += 1
            self.reasons[card.reason] += 1

    def figures(self, value: str, label: str, displays: Callable[[_Coding], str]) -> Figures:
        reasons = sorted(
            (
                Reason(system, code, displays((system, code)), n)
                for (system, code), n in self.reasons.items()
            ),
            key=_sort_key,
        )
        return Figures(value, label, self.shown, self.accepted, self.overridden, tuple(reasons))


def _sort_key(reason: Reason) -> tuple[int, bool, str]:
    """Most overridden first; "no reason given" after coded reasons with as many."""
    return (-reason.overridden, reason.code is None, reason.display)


def feedback_report(
    engine: Engine, since: datetime, until: datetime, groups: Mapping[str, str]
) -> FeedbackReport:
    """The figures for live cards shown in ``[since, until)`` (see the module docstring);
    ``groups``: card group code -> display (card-groups.json)."""
    cards = list(_outcomes(engine, common.utc(since), common.utc(until), groups))
    displays: dict[_Coding, Counter[str]] = {}
    for card in cards:
        if card.outcome == "overridden" and card.display:
            displays.setdefault(card.reason, Counter())[card.display] += 1

    def display(reason: _Coding) -> str:
        if reason[1] is None:
            return NO_REASON
        sent = displays.get(reason)
        return sent.most_common(1)[0][0] if sent else reason[1]

    total = _Tally()
    tallies: dict[str, dict[str, _Tally]] = {name: {} for name in DIMENSIONS}
    for card in cards:
        total.add(card)
        for name in DIMENSIONS:
            tallies[name].setdefault(card.keys[name], _Tally()).add(card)
    dimensions = {
        name: tuple(
            tallies[name][value].figures(value, _label(name, value, groups), display)
            for value in _ordered(name, set(tallies[name]), groups)
        )
        for name in DIMENSIONS
    }
    return FeedbackReport(
        common.utc(since), common.utc(until), total.figures("all", "All", display), dimensions
    )


def _outcomes(
    engine: Engine, since: datetime, until: datetime, groups: Mapping[str, str]
) -> Iterable[_Outcome]:
    rank = (
        func.row_number()
        .over(
            partition_by=feedback.c.card_uuid,
            order_by=(
                feedback.c.outcome_timestamp.desc(),
                feedback.c.received_at.desc(),
                feedback.c.id.desc(),
            ),
        )
        .label("rank")
    )
    latest = select(
        feedback.c.card_uuid,
        feedback.c.outcome,
        feedback.c.override_system,
        feedback.c.override_code,
        feedback.c.override_display,
        rank,
    ).subquery("latest")
    card = issued_cards.c
    query = (
        select(
            card.service_id,
            card.topic,
            card.indicator,
            card.hook,
            card.issued_at,
            latest.c.outcome,
            latest.c.override_system,
            latest.c.override_code,
            latest.c.override_display,
        )
        .select_from(
            issued_cards.outerjoin(
                latest, and_(latest.c.card_uuid == card.uuid, latest.c.rank == 1)
            )
        )
        .where(
            card.issued_at >= since,
            card.issued_at < until,
            or_(card.mode.is_(None), card.mode == "live"),
            card.suppressed.is_not(True),
        )
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    for row in rows:
        yield _Outcome(
            {
                "group": common.card_group(row.topic, groups),
                "topic": row.topic or common.NO_TOPIC,
                "indicator": row.indicator,
                "hook": row.hook or common.UNKNOWN,
                "service": row.service_id,
                "week": common.iso_week(row.issued_at),
            },
            row.outcome,
            (row.override_system, row.override_code) if row.override_code else (None, None),
            row.override_display,
        )


def _ordered(name: str, values: set[str], groups: Mapping[str, str]) -> list[str]:
    if name == "group":
        return common.group_order(values, groups)
    if name == "indicator":
        return common.indicator_order(values)
    return sorted(values)  # weeks sort chronologically as text


def _label(name: str, value: str, groups: Mapping[str, str]) -> str:
    return common.group_display(value, groups) if name == "group" else value


# ------------------------------------------------------------------------------------ JSON, CSV


def _figures_json(figures: Figures) -> dict[str, Any]:
    return {
        "value": figures.value,
        "label": figures.label,
        "shown": figures.shown,
        "accepted": figures.accepted,
        "overridden": figures.overridden,
        "ignored": figures.ignored,
        "override_rate": figures.override_rate,
        "reasons": [
            {
                "system": reason.system,
                "code": reason.code,
                "display": reason.display,
                "overridden": reason.overridden,
            }
            for reason in figures.reasons
        ],
    }


def to_json(report: FeedbackReport) -> str:
    """``{"period": {"since", "until"}, "totals": figures, "dimensions": {name: [figures]}}``;
    figures: value, label, shown, accepted, overridden, ignored, override_rate (null when
    nothing was shown) and reasons [{system, code, display, overridden}]."""
    data = {
        "period": {"since": report.since.isoformat(), "until": report.until.isoformat()},
        "totals": _figures_json(report.totals),
        "dimensions": {
            name: [_figures_json(figures) for figures in values]
            for name, values in report.dimensions.items()
        },
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


CSV_COLUMNS = (
    "row",
    "dimension",
    "value",
    "label",
    "shown",
    "accepted",
    "overridden",
    "ignored",
    "override_rate",
    "reason_system",
    "reason_code",
    "reason_display",
)


def _rows(report: FeedbackReport) -> Iterable[tuple[str, Figures]]:
    yield "total", report.totals
    for name, values in report.dimensions.items():
        for figures in values:
            yield name, figures


def to_csv(report: FeedbackReport) -> str:
    """One ``counts`` row per (dimension, value), the totals first (dimension ``total``), each
    followed by one ``reason`` row per override reason (its ``overridden``: the cards overridden
    with that reason; the other counts empty). ``override_rate``: a fraction, empty when
    nothing was shown."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, figures in _rows(report):
        rate = figures.override_rate
        writer.writerow(
            [
                "counts",
                name,
                figures.value,
                figures.label,
                figures.shown,
                figures.accepted,
                figures.overridden,
                figures.ignored,
                "" if rate is None else f"{rate:.4f}",
                "",
                "",
                "",
            ]
        )
        for reason in figures.reasons:
            writer.writerow(
                [
                    "reason",
                    name,
                    figures.value,
                    figures.label,
                    "",
                    "",
                    reason.overridden,
                    "",
                    "",
                    reason.system or "",
                    reason.code or "",
                    reason.display,
                ]
            )
    return out.getvalue()


# ----------------------------------------------------------------------------------------- HTML

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #1f2328;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left;
         vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f6f8fa; }
figure { margin: 1rem 0 2rem; } svg { max-width: 100%; height: auto; }
.note { color: #57606a; }
"""


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{100 * rate:.1f}%"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(title: str, values: Iterable[Figures], first: str) -> str:
    head = "".join(
        f'<th class="n">{name}</th>'
        for name in ("Shown", "Accepted", "Overridden", "Ignored", "Override rate")
    )
    body = []
    for figures in values:
        reasons = "; ".join(f"{r.display} ({r.overridden})" for r in figures.reasons)
        label = figures.label
        if label != figures.value:
            label = f"{label} ({figures.value})"
        body.append(
            f"<tr><td>{_e(label)}</td>"
            f'<td class="n">{figures.shown}</td><td class="n">{figures.accepted}</td>'
            f'<td class="n">{figures.overridden}</td><td class="n">{figures.ignored}</td>'
            f'<td class="n">{_percent(figures.override_rate)}</td>'
            f"<td>{_e(reasons)}</td></tr>"
        )
    return (
        f"<h2>{_e(title)}</h2>\n<table><thead><tr><th>{_e(first)}</th>{head}"
        f"<th>Override reasons (cards)</th></tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>"
    )


def _reason_table(totals: Figures) -> str:
    rows = "\n".join(
        f"<tr><td>{_e(r.display)}</td><td>{_e(r.code or '')}</td><td>{_e(r.system or '')}</td>"
        f'<td class="n">{r.overridden}</td>'
        f'<td class="n">{_percent(r.overridden / totals.overridden)}</td></tr>'
        for r in totals.reasons
    )
    return (
        "<h2>Override reasons</h2>\n<table><thead><tr><th>Reason</th><th>Code</th>"
        '<th>System</th><th class="n">Overridden</th><th class="n">Share of overrides</th>'
        f"</tr></thead>\n<tbody>\n{rows}\n</tbody></table>"
    )


def _charts(report: FeedbackReport) -> list[str]:
    from cds_service.reports import charts

    groups = report.dimensions.get("group", ())
    weeks = report.dimensions.get("week", ())
    figures = [
        charts.outcome_bars(
            [g.label for g in groups],
            [g.accepted for g in groups],
            [g.overridden for g in groups],
            [g.ignored for g in groups],
        ),
        charts.rate_line([w.value for w in weeks], [w.override_rate for w in weeks]),
    ]
    if report.totals.reasons:
        figures.append(
            charts.reason_bars(
                [r.display for r in report.totals.reasons],
                [r.overridden for r in report.totals.reasons],
            )
        )
    else:
        figures.append('<p class="note">No card was overridden in this period.</p>')
    return [f"<figure>{chart}</figure>" for chart in figures]


def to_html(report: FeedbackReport) -> str:
    """One standalone page (inline CSS and SVG; no script, no external resource): the totals,
    three charts (outcomes by card group, override rate by week, override reasons) and a table
    per dimension. Raises ``charts.ChartsUnavailable`` (an ImportError: ``pip install
    'ivig-cds[reports]'``) when matplotlib is missing, even for a period without cards."""
    from cds_service.reports import charts

    charts.require_matplotlib()
    totals = report.totals
    period = common.period_text(report.since, report.until)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>IVIG CDS feedback report, {_e(period)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>IVIG CDS feedback report</h1>",
        f"<p>Live cards shown from {_e(period)}.</p>",
    ]
    if totals.shown == 0:
        parts.append('<p class="note">No live card was shown in this period.</p>')
    else:
        parts.append(
            f"<p><strong>{totals.shown}</strong> cards shown: {totals.accepted} accepted, "
            f"{totals.overridden} overridden ({_percent(totals.override_rate)}), "
            f"{totals.ignored} ignored (no feedback).</p>"
        )
        parts.extend(_charts(report))
        if totals.reasons:
            parts.append(_reason_table(totals))
        for name, values in report.dimensions.items():
            title = DIMENSION_TITLES.get(name, name)
            parts.append(_table(f"By {title.lower()}", values, title))
        parts.append(
            '<p class="note">A card counts once: its latest feedback decides whether it was '
            "accepted or overridden; a card without feedback was ignored. Shadow cards and cards "
            "left out of an order-sign answer are not counted.</p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
