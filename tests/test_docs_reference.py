"""The names and links the docs use exist (issue 14): every ``helixserve`` command and option,
every ``HELIXSERVE_*`` setting with its default (docs/configuration.md against
:class:`helixserve.settings.Settings`), every relative link and its anchor, and every page in the
README's list. The commands themselves are run by tests/test_docs.py."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tests.support.doc_commands import extract

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

OTHER_OPTIONS = {
    "--check": "ruff format --check",
    "--from-literal": "kubectl create secret",
    "--secret": "docker build",
    "--build": "docker compose up",
    "--no-build": "docker-compose up",
    "--profile": "docker compose",
    "--bridge": "dockerd",
    "--iptables": "dockerd",
    "--ip-forward": "dockerd",
    "--variant": "debootstrap",
}


def benchmark_options() -> set[str]:
    """Every ``--option`` the benchmark scripts (``python -m benchmarks.X``) declare."""
    found: set[str] = set()
    for path in (ROOT / "benchmarks").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"add_argument\(\s*\"(--[a-z][a-z0-9-]*)\"", text))
    return found


def cli_names() -> tuple[set[str], set[str]]:
    """Every ``helixserve`` command path (``models list``) and every ``--option`` of any command."""
    import typer

    from helixserve.cli.app import app

    paths: set[str] = set()
    options: set[str] = set()

    def walk(command: Any, path: str) -> None:
        paths.add(path)
        for param in command.params:
            options.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return paths, options


def test_every_command_and_option_the_docs_name_exists() -> None:
    paths, options = cli_names()
    groups = {p.split()[0] for p in paths if " " in p}
    wrong = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
        code = re.findall(r"`([^`]+)`", prose) + [c.first_line for c in extract(path, "")]
        for span in code:
            for first, sub in re.findall(r"\bhelixserve ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", span):
                group = first in groups
                if first not in paths or (group and f"{first} {sub}" not in paths):
                    wrong.append(f"{path.name}: helixserve {first} {sub}")
        mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
        known = options | benchmark_options() | set(OTHER_OPTIONS)
        wrong += [f"{path.name}: {o}" for o in sorted(mentioned - known)]
    assert wrong == []


def test_configuration_lists_every_setting_with_its_default() -> None:
    from helixserve.settings import Settings

    rows = re.findall(
        r"^\| `HELIXSERVE_([A-Z0-9_]+)`(?: / `HELIXSERVE_([A-Z0-9_]+)`)? \| ([^|]+) \|",
        (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"),
        re.M,
    )
    named = {n.lower() for row in rows for n in row[:2] if n}
    assert named == set(Settings.model_fields)
    defaults = Settings.model_construct()
    for name, _, shown in rows:
        value = getattr(defaults, name.lower())
        literal = re.fullmatch(r"`([^`]+)`", shown.strip())
        if literal is None or value is None or literal.group(1).startswith("AWS_"):
            continue  # a default in words ("16 MiB", "(empty: no auth)") or from AWS_*
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        assert os.path.expanduser(literal.group(1)) == str(value), name


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for page in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = page.parent / path if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", linked.read_text(encoding="utf-8"), re.M)
                if anchor not in [slug(h) for h in headings]:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_every_doc_page_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in DOCS[1:] if f"(docs/{p.name})" not in readme] == []
