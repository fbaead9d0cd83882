"""Debian's Chromium for Playwright tests: where it is, how it is launched, and the ``browser``
fixture (:func:`launch_browser`: module-scoped; skipped where Chromium is missing, a failure in
CI where it must be)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CANDIDATES = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
CHROMIUM = next((p for p in CANDIDATES if Path(p).exists()), None)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
]


@pytest.fixture(scope="module", name="browser")
def launch_browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is missing: .ci/run installs it with apt-get install chromium")
        pytest.skip("Chromium is not installed here (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


@contextmanager
def checked_page(browser: Browser, base_url: str, width: int = 1100) -> Iterator[Page]:
    """A tab on ``base_url`` (``width`` x 900, downloads accepted) that fails the test, when it
    closes, if the page broke its content security policy."""
    context = browser.new_context(
        base_url=base_url, viewport={"width": width, "height": 900}, accept_downloads=True
    )
    tab = context.new_page()
    blocked: list[str] = []
    tab.on(
        "console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None
    )
    yield tab
    context.close()
    assert blocked == [], f"the page broke its content security policy: {blocked}"


def shot(page: Page, name: str) -> None:
    """A full-page screenshot into ``$HELIXSERVE_SCREENSHOTS`` when it is set."""
    folder = os.environ.get("HELIXSERVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
