"""Fixtures of the image tests (``make image``, not ``make test``: they are marked ``image``,
which pyproject's ``addopts`` deselect): one private Docker engine for the session
(:mod:`tests.support.docker_engine`), the local base images (:mod:`tests.support.base_images`),
the images built from this checkout, and their sizes and build times, printed at the end.

The session's teardown checks that the engine left nothing behind: no process of it, no new
network interface, no changed firewall rule.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.base_images import ensure_bases
from tests.support.docker_engine import Engine, cache_dir, private_engine

ROOT = Path(__file__).resolve().parents[2]
FIGURES: list[str] = []


def _host_state() -> tuple[list[str], str]:
    """The network interfaces and the firewall rules (``iptables-save``, where installed)."""
    links = sorted(p.name for p in Path("/sys/class/net").iterdir())
    save = shutil.which("iptables-save")
    done = subprocess.run([save], capture_output=True, text=True, check=False) if save else None
    rules = done.stdout if done else ""
    kept = [line for line in rules.splitlines() if not line.startswith(("#", ":"))]
    return links, "\n".join(kept)  # without the comments (times) and counters


def _processes_naming(folder: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in text:
            found.append(text)
    return found


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    before = _host_state()
    with private_engine(cache_dir()) as running:
        yield running
    assert _processes_naming(running.folder) == [], "the engine left processes behind"
    assert not running.folder.exists()
    assert _host_state() == before, "the engine changed the network interfaces or firewall rules"


@pytest.fixture(scope="session")
def figures() -> list[str]:
    """Lines for the report at the end: what was built, its size and build time."""
    return FIGURES


@pytest.fixture(scope="session")
def bases(engine: Engine) -> None:
    FIGURES.extend(ensure_bases(engine, cache_dir()))


@pytest.fixture(scope="session")
def serving_image(engine: Engine, bases: None) -> str:
    """The serving image (the Dockerfile's default stage), tagged ``helixserve``."""
    FIGURES.append(engine.build("helixserve", ROOT).describe())
    return "helixserve"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("images (docker image inspect sizes, wall-clock build times)")
        for line in FIGURES:
            terminalreporter.write_line(line)
