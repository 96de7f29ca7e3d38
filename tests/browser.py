"""A real browser for the HTML pages: Debian's chromium, headless, driven by selenium through
Debian's chromedriver (``make test`` installs both with apt-get when it runs as root).

Without them the tests that use :func:`chromium` skip, and fail under IVIG_CDS_REQUIRE_SERVICES=1.
The reports are opened as files (``file://``): a page that reached for the network would show as a
console error, since these pages must stand alone. The demo order-entry page is served by the app
on 127.0.0.1 (tests/test_demo_page.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REQUIRE_SERVICES


@dataclass(frozen=True)
class Opened:
    console_errors: list[str]  # the browser's SEVERE log entries: script errors, failed loads
    screenshot: Path
    title: str
    svg_count: int
    text: str


class Browser:
    def __init__(self, driver: Any) -> None:
        self._driver = driver

    @property
    def driver(self) -> Any:
        """The selenium WebDriver, to drive a served page (tests/test_demo_page.py)."""
        return self._driver

    def console_errors(self) -> list[str]:
        """The SEVERE entries (script errors, failed loads) logged since the last call: reading
        the browser's log empties it."""
        return [e["message"] for e in self._driver.get_log("browser") if e["level"] == "SEVERE"]

    def screenshot(self, path: Path, width: int = 1280) -> Path:
        """The whole page: the window made as tall as the page, plus the browser's own bars."""
        height = self._driver.execute_script("return document.documentElement.scrollHeight")
        self._driver.set_window_size(width, min(max(int(height) + 200, 800), 12000))
        self._driver.save_screenshot(str(path))
        return path

    def open(self, page: Path, screenshot: Path) -> Opened:
        driver = self._driver
        self.console_errors()  # what an earlier page left
        driver.get(page.resolve().as_uri())
        self.screenshot(screenshot)
        return Opened(
            console_errors=self.console_errors(),
            screenshot=screenshot,
            title=driver.title,
            svg_count=int(driver.execute_script("return document.querySelectorAll('svg').length")),
            text=driver.find_element("tag name", "body").text,
        )


def _missing() -> str | None:
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return "Debian's chromium and chromium-driver are not installed (`make test` installs them)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    reason = _missing()
    if reason is not None:
        if REQUIRE_SERVICES:
            pytest.fail(f"chromium is required (IVIG_CDS_REQUIRE_SERVICES=1): {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=shutil.which("chromedriver"))
    )
    driver.set_page_load_timeout(60)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
