"""The demo order-entry page (issue 14) in Debian's headless chromium, as a clinician uses it:
Privigen 2 g/kg over 5 days for a 66-year-old, the boxed-warning card, its suggestion accepted
(the order changes, the cards are checked again), another card overridden with a reason, the
orders signed, and the feedback found in the database. Screenshots go under the test's
temporary directory (``screenshots/``); ``IVIG_CDS_DEMO_SCREENSHOT=path`` also writes the
README's picture there."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from browser import Browser
from conftest import make_app
from flask import Flask, request
from werkzeug.serving import make_server

from cds_service.ids import new_uuid

BOXED_WARNING = "IVIGBOXEDWARNINGWARNING"
WAIT_S = 60  # a busy 2-core machine; each step usually takes well under a second


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """The app on an ephemeral 127.0.0.1 port, for as long as the block runs."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


class Page:
    """The page's controls, found by id, and waits on what the page marks when it is done."""

    def __init__(self, browser: Browser, shots: Path) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.browser = browser
        self.driver = browser.driver
        self.shots = shots
        self.wait = WebDriverWait(self.driver, WAIT_S)

    @classmethod
    def opened(cls, browser: Browser, base: str, shots: Path) -> Page:
        """The page loaded and started (its choices and patients fetched); the browser's log
        emptied of what an earlier page left."""
        browser.console_errors()
        browser.driver.get(f"{base}/demo/")
        page = cls(browser, shots)
        page.wait.until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready"))
        return page

    def pick_patient(self, key: str) -> None:
        """Pick a fixture patient and wait for the chart-open (patient-view) answer."""
        before = self.calls("pv-cards")
        self.choose("patient", key)
        self.after_call("pv-cards", before)

    def by_id(self, element_id: str) -> Any:
        return self.driver.find_element("id", element_id)

    def choose(self, element_id: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.by_id(element_id)).select_by_value(value)

    def type_into(self, element_id: str, text: str) -> None:
        field = self.by_id(element_id)
        field.clear()
        field.send_keys(text)

    def calls(self, panel: str) -> int:
        return int(self.by_id(panel).get_attribute("data-calls"))

    def after_call(self, panel: str, before: int) -> list[Any]:
        """Wait for the panel's next answer; its cards."""
        self.wait.until(lambda _: self.calls(panel) > before)
        return list(self.by_id(panel).find_elements("css selector", ".card"))

    def card(self, panel: str, topic: str) -> Any:
        found = [c for c in self.by_id(panel).find_elements("css selector", ".card")]
        return next(c for c in found if c.get_attribute("data-topic") == topic)

    def shoot(self, name: str) -> Path:
        return self.browser.screenshot(self.shots / f"{name}.png", width=1500)


def _feedback(database: Path) -> list[dict[str, Any]]:
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM feedback ORDER BY id")).mappings()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


def test_a_clinician_orders_privigen_accepts_overrides_and_signs(
    chromium: Browser, tmp_path: Path
) -> None:
    app = make_app(tmp_path, DEMO_PAGE=True, UUID_FACTORY=new_uuid)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    driver = chromium.driver
    with served(app) as base:
        driver.set_window_size(1500, 1000)
        page = Page.opened(chromium, base, shots)

        # The chart: an elderly fixture patient, and the chart-open (patient-view) panel.
        page.pick_patient("scenarios/ivig-in-age-66")
        assert "66 years" in page.by_id("patient-headline").text
        assert "Body weight: 70 kg" in page.by_id("summary-observations").text

        # The order: Privigen 0.4 g/kg IV once daily for 5 days (2 g/kg) for GBS.
        page.choose("product", "privigen")
        page.type_into("dose", "0.4")
        page.choose("dose-unit", "g/kg")
        page.choose("route", "IV")
        page.choose("frequency", "daily")
        page.type_into("days", "5")
        page.choose("reason", "guillain-barre-syndrome")
        assert "2 g/kg in all" in page.by_id("order-preview").text
        page.by_id("select-order").click()
        cards = page.after_call("cards", 0)
        boxed = page.card("cards", BOXED_WARNING)
        assert "boxed warning" in boxed.text.lower() and "warning" in boxed.get_attribute("class")
        assert len(cards) >= 2, [c.text for c in cards]
        shown_first = boxed.get_attribute("data-uuid")
        boxed.find_element("css selector", "details summary").click()  # the Markdown detail
        detail = boxed.find_element("css selector", ".detail")
        assert detail.find_elements("tag name", "strong") and detail.find_elements("tag name", "li")
        assert "**" not in detail.text  # rendered, not shown as source
        page.shoot("1-order-select-cards")

        # Accept the boxed-warning card's recommended suggestion: the order gains its rate.
        drafts_before = page.by_id("drafts").text
        assert "rate" not in drafts_before
        recommended = boxed.find_element("css selector", ".accept.recommended")
        accepted_label = recommended.text
        accepted_id = recommended.get_attribute("data-suggestion")
        recommended.click()
        cards = page.after_call("cards", 1)
        drafts = page.by_id("drafts").text
        assert "rate 0.5 mg/kg/min to 4 mg/kg/min" in drafts, drafts
        boxed = page.card("cards", BOXED_WARNING)
        assert boxed.get_attribute("data-uuid") != shown_first  # a new answer, checked again
        labels = [b.text for b in boxed.find_elements("css selector", ".accept")]
        assert accepted_label not in labels and labels, labels  # the rate is in the order now
        page.shoot("2-after-accepting")

        # Override another card, with a reason.
        other = next(c for c in cards if c.get_attribute("data-topic") != BOXED_WARNING)
        overridden_uuid = other.get_attribute("data-uuid")
        other.find_element("css selector", ".override").click()
        reasons = other.find_elements("css selector", ".override-reason option")
        if len(reasons) > 1:
            reasons[1].click()
        other.find_element("css selector", ".override-comment").send_keys(
            "Discussed with neurology"
        )
        other.find_element("css selector", ".confirm-override").click()
        page.wait.until(
            lambda _: "Overridden" in other.find_element("css selector", ".outcome").text
        )
        page.shoot("3-after-overriding")

        # Sign: order-sign with the revised order; the drafts become signed orders.
        calls = page.calls("cards")
        page.by_id("sign-orders").click()
        page.after_call("cards", calls)
        page.wait.until(lambda _: "Signed" in page.by_id("status").text)
        assert "Privigen" in page.by_id("signed").text
        assert "rate 0.5 mg/kg/min" in page.by_id("signed").text
        page.shoot("4-signed")
        assert chromium.console_errors() == []

    rows = _feedback(tmp_path / "feedback.sqlite3")
    by_outcome = {row["outcome"]: row for row in rows}
    assert sorted(by_outcome) == ["accepted", "overridden"], rows
    accepted = by_outcome["accepted"]
    assert accepted["card_uuid"] == shown_first and accepted_id in accepted["accepted_suggestions"]
    assert accepted["service_id"] == "ivig-order-select"
    overridden = by_outcome["overridden"]
    assert overridden["card_uuid"] == overridden_uuid
    assert overridden["user_comment"] == "Discussed with neurology"
    readme_picture = os.environ.get("IVIG_CDS_DEMO_SCREENSHOT")
    if readme_picture:
        shutil.copyfile(shots / "1-order-select-cards.png", readme_picture)


def test_a_switch_to_scig_stops_the_record_iv_order(chromium: Browser, tmp_path: Path) -> None:
    """A scenario's own orders loaded onto the pad; "Stop the Privigen IV order" (a delete of an
    order on the record, not a draft) discontinues it, and the re-check no longer asks; loading
    the scenario again restores its record; an override with a comment only sends no coded
    reason."""
    app = make_app(tmp_path, DEMO_PAGE=True, UUID_FACTORY=new_uuid)
    with served(app) as base:
        page = Page.opened(chromium, base, tmp_path)
        page.pick_patient("scenarios/ivig-in-scig-after-ivig")
        page.by_id("load-scenario").click()
        page.after_call("cards", 0)
        switch = page.card("cards", "IVIGPRODUCTWARNING")
        assert "Hizentra" in page.by_id("drafts").text
        assert page.by_id("product").get_attribute("value") == "hizentra"  # the form shows it
        stop = next(
            b for b in switch.find_elements("css selector", ".accept") if b.text.startswith("Stop")
        )
        stop.click()
        cards = page.after_call("cards", 1)
        drafts = page.by_id("drafts").text
        assert "Discontinued: MedicationRequest/ivig-in-scig-after-ivig-ivig-current" in drafts
        assert "status stopped" in drafts
        labels = [b.text for c in cards for b in c.find_elements("css selector", ".accept")]
        assert not any(label.startswith("Stop") for label in labels), labels
        assert "(stopped)" in page.by_id("summary-medications").text  # the chart says so too
        page.shoot("scig-switch")
        # The scenario afresh: its record as it was, the IV order current again.
        calls = page.calls("cards")
        page.by_id("load-scenario").click()
        page.after_call("cards", calls)
        assert "Discontinued" not in page.by_id("drafts").text
        assert "(active)" in page.by_id("summary-medications").text
        switch = page.card("cards", "IVIGPRODUCTWARNING")
        assert any(
            b.text.startswith("Stop") for b in switch.find_elements("css selector", ".accept")
        )
        # Override it with a comment alone, though the card has coded reasons: none is sent.
        assert len(switch.find_elements("css selector", ".override-reason option")) > 1
        overridden_uuid = switch.get_attribute("data-uuid")
        switch.find_element("css selector", ".override").click()
        switch.find_element("css selector", ".override-comment").send_keys("Patient's choice")
        switch.find_element("css selector", ".confirm-override").click()
        page.wait.until(
            lambda _: "Overridden" in switch.find_element("css selector", ".outcome").text
        )
        row = next(
            r for r in _feedback(tmp_path / "feedback.sqlite3") if r["card_uuid"] == overridden_uuid
        )
        assert row["override_code"] is None and row["user_comment"] == "Patient's choice"
        assert chromium.console_errors() == []


def test_an_answer_for_the_patient_before_is_never_shown(chromium: Browser, tmp_path: Path) -> None:
    """Select for one patient, then pick another before the answer comes (the service held
    back 1.5 s here): the late answer, about the first patient, is dropped."""
    app = make_app(tmp_path, DEMO_PAGE=True, UUID_FACTORY=new_uuid)

    @app.before_request
    def slow_order_select() -> None:
        if request.path.endswith("/ivig-order-select"):
            time.sleep(1.5)

    with served(app) as base:
        page = Page.opened(chromium, base, tmp_path)
        page.pick_patient("scenarios/ivig-in-age-66")
        page.choose("product", "privigen")
        page.choose("reason", "guillain-barre-syndrome")
        page.by_id("select-order").click()
        page.pick_patient("scenarios/ivig-out-age-64")  # before the answer is back
        assert "64 years" in page.by_id("patient-headline").text
        time.sleep(2.5)  # the first patient's answer has arrived by now, and must be dropped
        assert "age 66" not in page.by_id("cards").text
        assert page.calls("cards") == 0 and page.by_id("drafts").text == "No draft orders."
        assert "busy" not in (page.by_id("cards").get_attribute("class") or "")  # still usable
        page.by_id("select-order").click()  # the new patient's own order, checked
        page.after_call("cards", 0)
        assert "age 66" not in page.by_id("cards").text
        assert "Privigen" in page.by_id("drafts").text


HOSTILE_MARKDOWN = (
    '**bold** <img src=data:, onerror="window.pwned = 1"> <script>window.pwned = 2</script> '
    "[a trap](javascript:window.pwned=3) [a label](https://dailymed.nlm.nih.gov/dailymed/)"
)


def test_card_markdown_is_rendered_and_nothing_in_it_runs(
    chromium: Browser, tmp_path: Path
) -> None:
    """A card's detail is Markdown from the service; what a record put in it must stay text.
    The page renders it with marked and sanitises it with DOMPurify (its CSP forbids inline
    script besides)."""
    driver = chromium.driver
    with served(make_app(tmp_path, DEMO_PAGE=True)) as base:
        Page.opened(chromium, base, tmp_path)
        html = driver.execute_script(
            "const box = document.createElement('div'); renderMarkdown(box, arguments[0]);"
            "document.body.append(box); return box.innerHTML;",
            HOSTILE_MARKDOWN,
        )
        assert "<strong>bold</strong>" in html
        assert "onerror" not in html and "<script" not in html and "javascript:" not in html
        assert 'href="https://dailymed.nlm.nih.gov/dailymed/"' in html
        assert 'rel="noopener noreferrer"' in html and 'target="_blank"' in html
        assert driver.execute_script("return window.pwned === undefined")
