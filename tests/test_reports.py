"""The reports (``cds_service/reports``): the feedback report and its JSON, CSV and HTML, the
shadow report, ``parse_since``, and the ``/metrics`` feedback counter.

The fixture is a fortnight of hook calls and feedback stored as the service stores them
(``FeedbackStore.store_audit`` and ``store_feedback``); every expected figure is computed here
from the fixture's own description (``LIVE``, ``SHADOW``), not copied from a run. The store is
read on SQLite and on PostgreSQL at IVIG_CDS_TEST_POSTGRES_URL (skipped when unreachable unless
IVIG_CDS_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from browser import Browser
from conftest import make_app, postgres_schema
from sqlalchemy.engine import Engine
from test_feedback import SELECT, issue_cards, post_feedback
from test_operations import samples, value

from cds_service.api.metrics import EXTENSION, install_metrics
from cds_service.audit import record_of
from cds_service.cards import Card, Coding, Source, Suggestion
from cds_service.feedback import FeedbackStore, issued_cards, make_engine
from cds_service.reports import charts, feedback_report, shadow_report
from cds_service.reports.common import card_group
from cds_service.reports.since import parse_since

TOPICS = "https://ivig-cds.org/fhir/CodeSystem/card-topic"
REASONS = "https://ivig-cds.org/fhir/CodeSystem/override-reason"
GROUPS = {
    "DONOTGIVE": "Do not give immune globulin",
    "PRODUCT": "Immune globulin product choice",
    "DOSE": "Immune globulin dose and administration",
    "BOXEDWARNING": "Boxed-warning risks and infusion safety",
    "DATA": "Data the checks lacked",
}
SINCE = datetime(2026, 6, 8, tzinfo=UTC)  # a Monday: ISO week 2026-W24
UNTIL = SINCE + timedelta(days=14)
W24, W25 = SINCE, SINCE + timedelta(days=7)
SERVICES = {"order-select": "ivig-order-select", "order-sign": "ivig-order-sign"}

TOLERATED = {"system": REASONS, "code": "tolerated", "display": "Tolerated this dose before"}
BENEFIT = {"system": REASONS, "code": "benefit", "display": "Benefit outweighs the risk"}
COMMENT = "comment only"  # an override with a userComment and no coded reason
ODD_TOPIC = "OTHER<b>&TOPIC"  # no group matches: its own group, and HTML must escape it


@dataclass(frozen=True)
class Live:
    """A live card of the fixture: where it was issued and the feedback items it got, in the
    order they are posted: (outcome, reason: a coding, COMMENT or None, minutes after issue)."""

    topic: str
    indicator: str
    group: str  # what card_group must find
    hook: str | None
    at: datetime
    feedback: tuple[tuple[str, Any, int], ...] = ()
    suppressed: bool = False
    counted: bool = True  # issued in the period, live, shown
    legacy: bool = False  # stored before hook and mode existed (both NULL)


LIVE = (
    Live("IVIGDOSEWARNING", "warning", "DOSE", "order-select", W24, (("accepted", None, 5),)),
    Live(
        "IVIGDOSEWARNING",
        "warning",
        "DOSE",
        "order-select",
        W24 + timedelta(hours=3),
        (("overridden", TOLERATED, 5),),
    ),
    Live(
        "IVIGDOSEINFO",
        "info",
        "DOSE",
        "order-sign",
        W25 + timedelta(days=1),
        (("overridden", BENEFIT, 2),),
    ),
    Live(
        "IVIGBOXEDWARNINGWARNINGNEWFACTOR",
        "warning",
        "BOXEDWARNING",
        "order-select",
        W24 + timedelta(days=2),
        (("overridden", COMMENT, 1),),
    ),
    Live("IVIGBOXEDWARNINGINFO", "info", "BOXEDWARNING", "order-sign", W25 + timedelta(days=2)),
    # Two items: the later (by outcomeTimestamp) wins, whichever was posted first.
    Live(
        "IVIGBOXEDWARNINGWARNING",
        "warning",
        "BOXEDWARNING",
        "order-select",
        W25 + timedelta(days=3),
        (("accepted", None, 1), ("overridden", TOLERATED, 9)),
    ),
    Live(
        "IVIGDONOTGIVECRITICAL",
        "critical",
        "DONOTGIVE",
        "order-select",
        W24 + timedelta(days=6, hours=23),
        (("overridden", BENEFIT, 9), ("accepted", None, 1)),
    ),
    Live("IVIGDONOTGIVECRITICAL", "critical", "DONOTGIVE", "order-sign", W25 + timedelta(hours=1)),
    Live(
        "IVIGDONOTGIVECRITICAL",
        "critical",
        "DONOTGIVE",
        "order-select",
        W25 + timedelta(days=6),
        (("accepted", None, 3),),
    ),
    Live("IVIGDOSEWARNING", "warning", "DOSE", "order-sign", UNTIL - timedelta(microseconds=1)),
    Live(
        "IVIGDATAINFO",
        "info",
        "DATA",
        None,
        W24 + timedelta(days=1),
        (("accepted", None, 4),),
        legacy=True,
    ),
    Live(ODD_TOPIC, "info", ODD_TOPIC, "order-select", W25 + timedelta(days=4)),
    # Not counted: left out of an order-sign answer (with feedback all the same), or outside
    # [SINCE, UNTIL).
    Live(
        "IVIGDOSEWARNING",
        "warning",
        "DOSE",
        "order-sign",
        W24 + timedelta(days=1),
        (("overridden", TOLERATED, 2),),
        suppressed=True,
        counted=False,
    ),
    Live(
        "IVIGDOSEWARNING",
        "warning",
        "DOSE",
        "order-select",
        SINCE - timedelta(microseconds=1),
        (("accepted", None, 1),),
        counted=False,
    ),
    Live("IVIGDOSEWARNING", "warning", "DOSE", "order-select", UNTIL, counted=False),
)


@dataclass(frozen=True)
class Shadow:
    topic: str
    indicator: str
    group: str
    patient: str | None  # the patient key of its call (the same on all cards of a call)
    call: str  # the hook call; several cards may share one
    at: datetime
    summary: str
    suppressed: bool = False
    counted: bool = True
    instance: str | None = None  # its hookInstance, when not the call's name (a reused one)


SHADOW = (
    Shadow("IVIGDONOTGIVECRITICAL", "critical", "DONOTGIVE", "p1", "s0", W24, "Z: do not give"),
    Shadow("IVIGDOSEWARNING", "warning", "DOSE", "p1", "s0", W24, "dose too high"),
    Shadow("IVIGDONOTGIVECRITICAL", "critical", "DONOTGIVE", "p2", "s1", W24 + timedelta(1), "A"),
    Shadow("IVIGDONOTGIVECRITICAL", "critical", "DONOTGIVE", "p1", "s2", W24 + timedelta(2), "B"),
    Shadow("IVIGDONOTGIVECRITICAL", "critical", "DONOTGIVE", None, "s3", W24 + timedelta(3), "C"),
    Shadow("IVIGDONOTGIVECRITICAL", "critical", "DONOTGIVE", "p3", "s4", W25, "B"),
    Shadow("IVIGDONOTGIVECRITICAL", "critical", "DONOTGIVE", None, "s5", W25 + timedelta(1), "C"),
    Shadow("IVIGDOSEWARNING", "warning", "DOSE", None, "s5", W25 + timedelta(1), "dose too high"),
    Shadow("IVIGDOSEINFO", "info", "DOSE", "p4", "s6", W25 + timedelta(2), "D", suppressed=True),
    Shadow("IVIGDOSEINFO", "info", "DOSE", "p5", "s7", UNTIL, "late", counted=False),
    # Two calls with one hookInstance at one instant (a client reusing it; a stopped clock).
    Shadow(
        "IVIGBOXEDWARNINGWARNING", "warning", "BOXEDWARNING", "p6", "s8", W25, "x", instance="i"
    ),
    Shadow(
        "IVIGBOXEDWARNINGWARNING", "warning", "BOXEDWARNING", "p7", "s9", W25, "x", instance="i"
    ),
)
SHADOW_CALLS_WITHOUT_CARDS = 2


# --- the store ----------------------------------------------------------------------------------


@dataclass
class Site:
    engine: Engine
    live: dict[str, Live] = field(default_factory=dict)  # card uuid -> its description
    shadow: dict[str, Shadow] = field(default_factory=dict)

    def report(self) -> feedback_report.FeedbackReport:
        return feedback_report.feedback_report(self.engine, SINCE, UNTIL, GROUPS)

    def shadow_report(self) -> shadow_report.ShadowReport:
        return shadow_report.shadow_report(self.engine, SINCE, UNTIL, GROUPS)


def _card(topic: str, indicator: str, summary: str | None = None) -> Card:
    return Card(
        uuid=str(uuid.uuid4()),
        summary=summary or f"{topic} card",
        indicator=indicator,  # type: ignore[arg-type]
        source=Source("IVIG safety", topic=Coding(TOPICS, topic)),
        suggestions=(Suggestion(label="Switch", uuid=str(uuid.uuid4())),),
        selection_behavior="at-most-one",
    )


def _item(card: Card, outcome: str, reason: Any, at: datetime) -> dict[str, Any]:
    """A feedback item as the API hands it to the store (validated, timestamp parsed)."""
    item: dict[str, Any] = {"card": card.uuid, "outcome": outcome, "outcomeTimestamp": at}
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": card.suggestions[0].uuid}]
    elif reason == COMMENT:
        item["overrideReason"] = {"userComment": "the team knows"}
    else:
        item["overrideReason"] = {"reason": dict(reason), "userComment": "why not"}
    return item


def _fill(engine: Engine) -> Site:
    store = FeedbackStore(engine)
    store.create_schema()
    site = Site(engine)
    for spec in LIVE:
        card = _card(spec.topic, spec.indicator)
        hook = spec.hook or "order-select"
        record = record_of(
            SERVICES[hook],
            str(uuid.uuid4()),
            [card],
            spec.at,
            "kv-1",
            None,
            None,
            (),
            {card.uuid} if spec.suppressed else frozenset(),
            hook=spec.hook,
            patient_key="live-patient",
        )
        store.store_audit([record])
        if spec.legacy:
            with engine.begin() as connection:
                connection.execute(
                    sqlalchemy.update(issued_cards)
                    .where(issued_cards.c.uuid == card.uuid)
                    .values(hook=None, mode=None)
                )
        for outcome, reason, minutes in spec.feedback:  # one batch each, in this order
            item = _item(card, outcome, reason, spec.at + timedelta(minutes=minutes))
            store.store_feedback(SERVICES[hook], [item])
        site.live[card.uuid] = spec
    calls: dict[str, list[tuple[Shadow, Card]]] = {}
    for shadow in SHADOW:
        card = _card(shadow.topic, shadow.indicator, shadow.summary)
        calls.setdefault(shadow.call, []).append((shadow, card))
        site.shadow[card.uuid] = shadow
    for call, made in calls.items():
        first = made[0][0]
        record = record_of(
            SERVICES["order-select"],
            first.instance or call,
            [card for _, card in made],
            first.at,
            "kv-1",
            None,
            None,
            (),
            {card.uuid for spec, card in made if spec.suppressed},
            hook="order-select",
            mode="shadow",
            patient_key=first.patient,
        )
        store.store_audit([record])
    for n in range(SHADOW_CALLS_WITHOUT_CARDS):
        empty = record_of(
            SERVICES["order-select"],
            f"empty-{n}",
            [],
            W25,
            "kv-1",
            None,
            None,
            (),
            hook="order-select",
            mode="shadow",
        )
        store.store_audit([empty])
    # A shadow card with feedback does not count in the feedback report either.
    shadow_card = next(uuid for uuid, spec in site.shadow.items() if spec.counted)
    store.store_feedback(
        SERVICES["order-select"],
        [
            {
                "card": shadow_card,
                "outcome": "overridden",
                "overrideReason": {"reason": dict(TOLERATED)},
                "outcomeTimestamp": W25,
            }
        ],
    )
    return site


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('reports') / 'store.sqlite3'}")
        try:
            yield _fill(engine)
        finally:
            engine.dispose()
        return
    with postgres_schema() as url:
        engine = make_engine(url)
        try:
            yield _fill(engine)
        finally:
            engine.dispose()


# --- what the fixture says ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    shown: int
    accepted: int
    overridden: int
    reasons: Counter[str | None]  # reason code (None: none given) -> cards

    @property
    def ignored(self) -> int:
        return self.shown - self.accepted - self.overridden


def _outcome(spec: Live) -> tuple[str | None, str | None]:
    """The latest item by outcome time (not by posting order): (outcome, reason code)."""
    if not spec.feedback:
        return None, None
    outcome, reason, _ = max(spec.feedback, key=lambda item: item[2])
    return outcome, reason["code"] if isinstance(reason, dict) else None


def _week(when: datetime) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


KEYS: dict[str, Callable[[Live], str]] = {
    "group": lambda spec: spec.group,
    "topic": lambda spec: spec.topic,
    "indicator": lambda spec: spec.indicator,
    "hook": lambda spec: spec.hook or "(unknown)",
    "service": lambda spec: SERVICES[spec.hook or "order-select"],
    "week": lambda spec: _week(spec.at),
}


def expected(specs: list[Live]) -> Expected:
    outcomes = [_outcome(spec) for spec in specs]
    return Expected(
        len(specs),
        sum(outcome == "accepted" for outcome, _ in outcomes),
        sum(outcome == "overridden" for outcome, _ in outcomes),
        Counter(code for outcome, code in outcomes if outcome == "overridden"),
    )


def counted() -> list[Live]:
    return [spec for spec in LIVE if spec.counted]


def assert_figures(got: feedback_report.Figures, want: Expected) -> None:
    assert (got.shown, got.accepted, got.overridden, got.ignored) == (
        want.shown,
        want.accepted,
        want.overridden,
        want.ignored,
    )
    assert got.override_rate == (want.overridden / want.shown if want.shown else None)
    assert Counter({reason.code: reason.overridden for reason in got.reasons}) == want.reasons
    assert sum(reason.overridden for reason in got.reasons) == got.overridden


# --- the feedback report ------------------------------------------------------------------------


def test_the_fixture_covers_what_the_report_must_tell_apart() -> None:
    specs = counted()
    assert len(specs) >= 10
    assert len({spec.group for spec in specs}) >= 3
    assert len({spec.hook for spec in specs if spec.hook}) == 2
    assert len({_week(spec.at) for spec in specs}) == 2
    outcomes = Counter(_outcome(spec) for spec in specs)
    assert outcomes[("overridden", "tolerated")] and outcomes[("overridden", "benefit")]
    assert outcomes[("overridden", None)] and outcomes[(None, None)]
    # The later item wins though it was posted first in one case and second in the other.
    twice = [spec for spec in specs if len(spec.feedback) == 2]
    assert [spec.feedback[0][2] < spec.feedback[1][2] for spec in twice] == [True, False]


def test_the_totals_count_each_shown_live_card_once(site: Site) -> None:
    report = site.report()
    assert_figures(report.totals, expected(counted()))
    assert report.totals.shown == len(counted()) < len(LIVE)  # suppressed and outside: out


@pytest.mark.parametrize("dimension", feedback_report.DIMENSIONS)
def test_every_dimension_has_the_figures_of_its_cards(site: Site, dimension: str) -> None:
    report = site.report()
    key = KEYS[dimension]
    values = {key(spec) for spec in counted()}
    got = {figures.value: figures for figures in report.dimensions[dimension]}
    assert set(got) == values
    for value_ in values:
        assert_figures(got[value_], expected([s for s in counted() if key(s) == value_]))
    assert sum(figures.shown for figures in got.values()) == report.totals.shown


def test_card_groups_come_from_the_topic_codes() -> None:
    for spec in LIVE:
        assert card_group(spec.topic, GROUPS) == spec.group
    assert card_group("IVIGBOXEDWARNINGWARNING", {"BOXED": "b", "BOXEDWARNING": "bw"}) == (
        "BOXEDWARNING"
    )
    assert card_group("IVIGNOSUCHGROUPINFO", GROUPS) == "IVIGNOSUCHGROUPINFO"
    assert card_group(None, GROUPS) == "(no topic)"


def test_groups_show_their_display_and_come_in_the_knowledge_order(site: Site) -> None:
    groups = site.report().dimensions["group"]
    labels = {figures.value: figures.label for figures in groups}
    assert labels["DOSE"] == GROUPS["DOSE"]
    assert labels[ODD_TOPIC] == ODD_TOPIC
    order = [figures.value for figures in groups]
    assert order == [code for code in GROUPS if code in order] + [ODD_TOPIC]
    weeks = [figures.value for figures in site.report().dimensions["week"]]
    assert weeks == ["2026-W24", "2026-W25"]


def test_reasons_have_their_display_and_no_reason_given(site: Site) -> None:
    reasons = {reason.code: reason for reason in site.report().totals.reasons}
    assert reasons["tolerated"].display == TOLERATED["display"]
    assert reasons["tolerated"].system == REASONS
    assert reasons["benefit"].display == BENEFIT["display"]
    assert reasons[None].display == "no reason given"
    assert reasons[None].system is None


def test_a_period_without_cards_has_zero_figures(site: Site) -> None:
    report = feedback_report.feedback_report(
        site.engine, UNTIL + timedelta(days=30), UNTIL + timedelta(days=60), GROUPS
    )
    assert (report.totals.shown, report.totals.override_rate) == (0, None)
    assert all(values == () for values in report.dimensions.values())
    page = feedback_report.to_html(report)
    assert "No live card was shown in this period." in page
    assert "<svg" not in page
    assert json.loads(feedback_report.to_json(report))["totals"]["override_rate"] is None


def _figures_json(figures: feedback_report.Figures) -> dict[str, Any]:
    return {
        "value": figures.value,
        "label": figures.label,
        "shown": figures.shown,
        "accepted": figures.accepted,
        "overridden": figures.overridden,
        "ignored": figures.ignored,
        "override_rate": figures.override_rate,
        "reasons": [
            {"system": r.system, "code": r.code, "display": r.display, "overridden": r.overridden}
            for r in figures.reasons
        ],
    }


def test_json_agrees_with_the_report(site: Site) -> None:
    report = site.report()
    data = json.loads(feedback_report.to_json(report))
    assert data["period"] == {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    assert data["totals"] == _figures_json(report.totals)
    assert list(data["dimensions"]) == list(feedback_report.DIMENSIONS)
    for name, values in report.dimensions.items():
        assert data["dimensions"][name] == [_figures_json(figures) for figures in values]


def test_csv_has_a_row_per_dimension_value_and_per_reason(site: Site) -> None:
    report = site.report()
    rows = list(csv.DictReader(io.StringIO(feedback_report.to_csv(report))))
    assert tuple(rows[0]) == feedback_report.CSV_COLUMNS
    everything = [("total", report.totals)] + [
        (name, figures) for name, values in report.dimensions.items() for figures in values
    ]
    counts = [row for row in rows if row["row"] == "counts"]
    assert [(row["dimension"], row["value"]) for row in counts] == [
        (name, figures.value) for name, figures in everything
    ]
    for row, (_, figures) in zip(counts, everything, strict=True):
        numbers = [int(row[k]) for k in ("shown", "accepted", "overridden", "ignored")]
        assert numbers == [figures.shown, figures.accepted, figures.overridden, figures.ignored]
        assert float(row["override_rate"]) == pytest.approx(figures.override_rate, abs=5e-5)
    reasons = [row for row in rows if row["row"] == "reason"]
    assert sorted(
        (row["dimension"], row["value"], row["reason_code"], int(row["overridden"]))
        for row in reasons
    ) == sorted(
        (name, figures.value, reason.code or "", reason.overridden)
        for name, figures in everything
        for reason in figures.reasons
    )
    assert {row["reason_display"] for row in reasons} >= {"no reason given", BENEFIT["display"]}


def test_html_is_one_standalone_page_with_its_charts_and_tables(site: Site) -> None:
    report = site.report()
    page = feedback_report.to_html(report)
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 3  # outcomes by group, override rate by week, reasons
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page
    assert "<script" not in page
    assert "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # only the charts' own clip paths
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert html_escaped(ODD_TOPIC) in page and ODD_TOPIC not in page
    for name in feedback_report.DIMENSIONS:
        assert f"By {feedback_report.DIMENSION_TITLES[name].lower()}" in page
    assert f"<strong>{report.totals.shown}</strong> cards shown" in page


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_html_without_matplotlib_says_what_to_install(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    report = site.report()
    with pytest.raises(ImportError, match=re.escape("pip install 'ivig-cds[reports]'")):
        feedback_report.to_html(report)
    with pytest.raises(charts.ChartsUnavailable):
        charts.require_matplotlib()
    assert json.loads(feedback_report.to_json(report))  # JSON and CSV need no matplotlib
    assert feedback_report.to_csv(report)


def test_the_html_page_opens_in_chromium_without_console_errors(
    site: Site, tmp_path: Path, chromium: Browser
) -> None:
    page = tmp_path / "feedback.html"
    page.write_text(feedback_report.to_html(site.report()), encoding="utf-8")
    opened = chromium.open(page, tmp_path / "feedback.png")
    assert opened.console_errors == []
    assert opened.svg_count == 3
    assert ODD_TOPIC in opened.text  # escaped in the source, shown as written


# --- the shadow report --------------------------------------------------------------------------


def _shadow_expected(specs: list[Shadow]) -> dict[str, Any]:
    recent = sorted(specs, key=lambda s: s.at, reverse=True)
    examples: list[str] = []
    for spec in recent:
        if spec.summary not in examples:
            examples.append(spec.summary)
    return {
        "cards": len(specs),
        "patients": len({s.patient for s in specs if s.patient}),
        "cards_without_patient": sum(s.patient is None for s in specs),
        "calls": len({s.call for s in specs}),
        "examples": examples[:3],
    }


def test_the_shadow_report_counts_cards_patients_and_calls(site: Site) -> None:
    report = site.shadow_report()
    specs = [s for s in SHADOW if s.counted and not s.suppressed]
    keys = {(s.group, s.indicator) for s in specs}
    assert [(row.group, row.indicator) for row in report.rows] == sorted(
        keys, key=lambda k: list(GROUPS).index(k[0])
    )
    for row in report.rows:
        cards = [s for s in specs if (s.group, s.indicator) == (row.group, row.indicator)]
        # "Most recent first" has one order: two cards at one instant say the same.
        assert all(a.summary == b.summary for a in cards for b in cards if a.at == b.at)
        want = _shadow_expected(cards)
        got = {
            "cards": row.cards,
            "patients": row.patients,
            "cards_without_patient": row.cards_without_patient,
            "calls": row.calls,
            "examples": list(row.examples),
        }
        assert got == want
        assert row.group_display == GROUPS[row.group]
    totals = _shadow_expected(specs)
    assert report.totals.cards == totals["cards"]
    assert report.totals.patients == totals["patients"]
    assert report.totals.cards_without_patient == totals["cards_without_patient"]
    assert report.totals.calls == totals["calls"]
    in_period = {s.call for s in SHADOW if s.counted}
    assert report.totals.calls_recorded == len(in_period) + SHADOW_CALLS_WITHOUT_CARDS


def test_the_shadow_examples_are_distinct_and_most_recent_first(site: Site) -> None:
    [row] = [row for row in site.shadow_report().rows if row.group == "DONOTGIVE"]
    assert row.examples == ("C", "B", "A")  # "Z" is the fourth; "C" and "B" came twice


def test_the_shadow_report_as_json_and_text(site: Site) -> None:
    report = site.shadow_report()
    data = json.loads(shadow_report.to_json(report))
    assert data["totals"] == {
        "cards": report.totals.cards,
        "patients": report.totals.patients,
        "cards_without_patient": report.totals.cards_without_patient,
        "calls": report.totals.calls,
        "calls_recorded": report.totals.calls_recorded,
    }
    assert [(r["group"], r["indicator"], r["cards"], r["examples"]) for r in data["rows"]] == [
        (row.group, row.indicator, row.cards, list(row.examples)) for row in report.rows
    ]
    text = shadow_report.to_text(report)
    assert "Shadow mode, 2026-06-08 00:00 UTC to 2026-06-22 00:00 UTC" in text
    for row in report.rows:
        assert f"{row.group_display} ({row.group})" in text
        assert f"{row.cards} card" in text
    assert "e.g. C" in text
    assert f"{report.totals.cards_without_patient} cards with no patient key" in text


def test_the_shadow_report_of_an_empty_period(site: Site) -> None:
    later = UNTIL + timedelta(days=30)
    report = shadow_report.shadow_report(site.engine, later, later + timedelta(days=1), GROUPS)
    assert report.rows == ()
    assert report.totals == shadow_report.ShadowTotals(0, 0, 0, 0, 0)
    assert "No shadow card in this period (0 shadow calls recorded)." in shadow_report.to_text(
        report
    )


def test_live_cards_are_not_in_the_shadow_report_nor_shadow_cards_in_the_feedback_report(
    site: Site,
) -> None:
    assert site.shadow_report().totals.cards == sum(s.counted and not s.suppressed for s in SHADOW)
    assert site.report().totals.shown == len(counted())


# --- --since ------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("30d", NOW - timedelta(days=30)),
        ("12w", NOW - timedelta(weeks=12)),
        ("48h", NOW - timedelta(hours=48)),
        (" 7D ", NOW - timedelta(days=7)),
        ("0d", NOW),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, since: datetime) -> None:
    assert parse_since(text, NOW) == since


def test_parse_since_takes_a_naive_now_as_utc() -> None:
    assert parse_since("1d", NOW.replace(tzinfo=None)) == NOW - timedelta(days=1)


@pytest.mark.parametrize(
    "text", ["last month", "", "30", "d30", "-5d", "3m", "1.5d", "2026-13-01", "2026-11-1", "11/01"]
)
def test_parse_since_refuses_anything_else_and_says_what_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match=r"48h, 30d, 12w.*YYYY-MM-DD") as refused:
        parse_since(text, NOW)
    assert repr(text) in str(refused.value)


# --- /metrics -----------------------------------------------------------------------------------


def test_metrics_count_stored_feedback_by_service_topic_and_outcome(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    if EXTENSION not in app.extensions:
        install_metrics(app)
    client = app.test_client()
    cards = issue_cards(app)
    card = cards[0]
    topic = card["source"]["topic"]["code"]
    first = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-06-15T12:05:00Z",
    }
    second = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": card["overrideReasons"][0]},
        "outcomeTimestamp": "2026-06-15T12:06:00Z",
    }
    assert value(samples(client), "ivig_cds_feedback_total") == 0
    response = post_feedback(client, {"feedback": [first, second]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 2}
    refused = post_feedback(client, {"feedback": [{**first, "card": str(uuid.uuid4())}]})
    assert refused.status_code == 404  # nothing stored, nothing counted

    found = samples(client)
    labels = {"service": SELECT, "topic": topic}
    assert value(found, "ivig_cds_feedback_total", outcome="accepted", **labels) == 1
    assert value(found, "ivig_cds_feedback_total", outcome="overridden", **labels) == 1
    assert value(found, "ivig_cds_feedback_total") == 2
    app.extensions["ivig_cds"].store.engine.dispose()
