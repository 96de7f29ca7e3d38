"""The go-live commands end to end (docs/go-live.md): hook calls in live and shadow mode and
feedback through the HTTP API, then ``ivig-cds report shadow|feedback`` and ``ivig-cds knowledge
report`` as an operator runs them, and their HTML pages opened in Debian's headless chromium
(no console error; a screenshot of each under the test's temporary directory)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import Browser
from conftest import (
    AUDIT_FLUSH_S,
    full_prefetch,
    hook_request,
    make_app,
    order_for,
    scenario_index,
    scenario_resources,
)
from flask import Flask

from cds_service.cli import main
from cds_service.ids import new_uuid
from hooks.registry import REGISTRY

SELECT = "ivig-order-select"
# Scenarios whose order-select answer has cards: the first few of the index, for speed.
FIRING = [s for s in scenario_index() if s["fires"] and "order" in s]


@dataclass(frozen=True)
class Site:
    database_url: str
    live_cards: list[dict[str, Any]]
    shadow_calls: int
    accepted: str  # the uuid of the card whose suggestion was accepted
    overridden: str


def _patient(scenario: dict[str, Any]) -> str:
    resources = scenario_resources(scenario["name"])
    return str(next(r["id"] for r in resources if r["resourceType"] == "Patient"))


def _call(app: Flask, scenario: dict[str, Any]) -> list[dict[str, Any]]:
    resources = scenario_resources(scenario["name"])
    patient = _patient(scenario)
    order = [order_for(scenario["order"], patient)]
    body = hook_request("order-select", patient, order, full_prefetch(resources))
    response = app.test_client().post(f"/cds-services/{SELECT}", json=body)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["cards"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A month at a site: some calls in shadow mode, then live calls with feedback on two cards
    (one suggestion accepted, one card overridden with a coded reason); the rest ignored."""
    root = tmp_path_factory.mktemp("site")
    database = f"sqlite:///{root / 'ivig.sqlite3'}"
    # Random uuids, as in production: two apps' counters would give the same card uuids.
    shared: dict[str, Any] = {
        "DATABASE_URL": database,
        "REPEAT_WINDOW_S": 0,
        "UUID_FACTORY": new_uuid,
    }
    shadow = make_app(root / "shadow", MODE="shadow", **shared)
    for scenario in FIRING[:4]:
        assert _call(shadow, scenario) == []
    assert shadow.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S)
    live = make_app(root / "live", **shared)
    cards = [card for scenario in FIRING[4:10] for card in _call(live, scenario)]
    assert live.extensions["ivig_cds"].audit.flush(AUDIT_FLUSH_S)
    with_suggestion = next(c for c in cards if c.get("suggestions"))
    with_reasons = next(c for c in cards if c.get("overrideReasons") and c is not with_suggestion)
    reason = with_reasons["overrideReasons"][0]
    feedback = [
        {
            "card": with_suggestion["uuid"],
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": with_suggestion["suggestions"][0]["uuid"]}],
            "outcomeTimestamp": "2026-06-15T12:05:00Z",
        },
        {
            "card": with_reasons["uuid"],
            "outcome": "overridden",
            "overrideReason": {"reason": reason},
            "outcomeTimestamp": "2026-06-15T12:06:00Z",
        },
    ]
    stored = live.test_client().post(
        f"/cds-services/{SELECT}/feedback", json={"feedback": feedback}
    )
    assert stored.status_code == 200, stored.get_json()
    return Site(database, cards, 4, with_suggestion["uuid"], with_reasons["uuid"])


def _run(monkeypatch: pytest.MonkeyPatch, site: Site, *argv: str) -> int:
    monkeypatch.setenv("IVIG_CDS_DATABASE_URL", site.database_url)
    return main(list(argv))


PERIOD = ("--since", "2026-06-01", "--until", "2026-07-01")


def test_the_feedback_report_counts_what_the_site_did(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, site, "report", "feedback", *PERIOD, "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    totals = report["totals"]
    shown = len(site.live_cards)
    assert (totals["shown"], totals["accepted"], totals["overridden"]) == (shown, 1, 1)
    assert totals["ignored"] == shown - 2  # shadow cards are not counted: none were shown


def test_the_shadow_report_counts_the_shadow_calls(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, site, "report", "shadow", *PERIOD, "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["calls"] == site.shadow_calls
    patients = {_patient(s) for s in FIRING[:4]}
    assert report["totals"]["patients"] == len(patients)
    assert _run(monkeypatch, site, "report", "shadow", *PERIOD) == 0
    text = capsys.readouterr().out
    assert report["rows"] and all(row["group_display"] in text for row in report["rows"])


def test_a_bad_period_is_refused_with_a_clear_message(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(monkeypatch, site, "report", "feedback", "--since", "last month") == 2
    assert "last month" in capsys.readouterr().err


def test_the_feedback_page_opens_in_chromium(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chromium: Browser
) -> None:
    page = tmp_path / "feedback.html"
    assert _run(monkeypatch, site, "report", "feedback", *PERIOD, "-o", str(page)) == 0
    opened = chromium.open(page, tmp_path / "feedback.png")
    assert opened.console_errors == []
    assert opened.svg_count >= 3  # the charts
    assert "Overridden" in opened.text or "overridden" in opened.text
    assert opened.screenshot.stat().st_size > 10_000


def test_the_knowledge_document_opens_in_chromium(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chromium: Browser
) -> None:
    page = tmp_path / "knowledge.html"
    assert main(["knowledge", "report", "-o", str(page)]) == 0
    opened = chromium.open(page, tmp_path / "knowledge.png")
    assert opened.console_errors == []
    missing = [topic for topic in REGISTRY.topics() if topic not in opened.text]
    assert missing == []
    assert opened.screenshot.stat().st_size > 10_000


def test_the_browser_check_sees_a_console_error(tmp_path: Path, chromium: Browser) -> None:
    """The check above can fail: a page with a broken script and a missing image is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!doctype html><title>t</title><img src="missing.png"><script>notDefined()</script>'
    )
    errors = chromium.open(page, tmp_path / "broken.png").console_errors
    assert Counter("notDefined" in e for e in errors)[True] == 1
    assert any("missing.png" in e for e in errors)
