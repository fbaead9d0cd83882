"""Debian's Chromium for Playwright tests: where it is, how it is launched, and the ``browser``
fixture (:func:`launch_browser`: module-scoped; skipped where Chromium is missing, a failure in
CI where it must be)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

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
