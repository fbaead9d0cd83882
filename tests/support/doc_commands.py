"""The commands the documentation shows, and whether an output has the shape it shows.

- :func:`extract` reads a Markdown file's ```console blocks (``$ cmd`` lines, ``\\``
  continuations; the lines after a command, up to the next ``$``, are its shown output) and its
  ```sh / ```bash blocks (every line is a command, nothing is shown).
- :func:`shape_problems` compares a command's real output with the shown one by shape, not by
  numbers: JSON by its keys and its text values; rich tables by their column names and rows; other
  lines in order, anywhere in the output. Every number is a wildcard, ``...`` stands for any text
  (``hs_1Yb...``: ``hs_`` then anything), and ``/home/me`` is the user's home folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
COMMAND_LANGUAGES = ("console", "sh", "bash")
NUMBER = r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?"
NUMBER_IN_TEXT = re.compile(r"(?<![A-Za-z0-9_])[-+]?\d+(?:[.,]\d+)*(?![A-Za-z0-9_])")
BOX = "┏┃┡│└┗┣╇├┠"
SEPARATORS = " ─━═"  # a rule under a header: as wide as the table, so not compared
UNBOX = str.maketrans("┃│", "  ")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class Command:
    """One command of a doc page: where it is, what it says, and the output shown under it."""

    doc: str
    line: int
    text: str
    shown: tuple[str, ...] = ()
    language: str = "console"

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def first_line(self) -> str:
        """The command without comments and continuations, single-spaced (for prefixes)."""
        joined = " ".join(" ".join(part.rstrip("\\") for part in self.text.splitlines()).split())
        return joined.split(" # ")[0]


@dataclass
class Block:
    language: str
    start: int
    lines: list[str] = field(default_factory=list)


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with its language and first content line number."""
    found: list[Block] = []
    current: Block | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if current is None and fence:
            current = Block(fence.group(1), number + 1)
        elif current is not None and line.strip() == "```":
            found.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
    return found


def extract(path: Path, name: str) -> list[Command]:
    """The commands of ``path``'s console / sh / bash blocks, ``name`` being its label, and the
    ``$`` lines of blocks in any other language (a transcript: ``Command.language`` says which)."""
    commands: list[Command] = []
    for block in blocks(path):
        prompted = any(x.startswith("$ ") for x in block.lines)
        if block.language in COMMAND_LANGUAGES:
            prompted = prompted or block.language == "console"
            commands += _prompted(block, name) if prompted else _plain(block, name)
        elif prompted:
            commands += _prompted(block, name)
    return commands


def _prompted(block: Block, name: str) -> list[Command]:
    language = block.language if block.language not in COMMAND_LANGUAGES else "console"
    commands: list[Command] = []
    text: list[str] = []
    shown: list[str] = []
    start = 0
    continued = False
    for offset, line in enumerate(block.lines):
        if continued:
            text.append(line)
        elif line.startswith("$ "):
            if text:
                commands.append(Command(name, start, "\n".join(text), tuple(shown), language))
            text, shown, start = [line[2:]], [], block.start + offset
        elif text:
            shown.append(line)
        continued = line.endswith("\\")
    if text:
        commands.append(Command(name, start, "\n".join(text), tuple(shown), language))
    return commands


def _plain(block: Block, name: str) -> list[Command]:
    commands: list[Command] = []
    text: list[str] = []
    for offset, line in enumerate(block.lines):
        if not text and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not text:
            start = block.start + offset
        text.append(line)
        if not line.endswith("\\"):
            commands.append(Command(name, start, "\n".join(text), language=block.language))
            text = []
    return commands


# --- shapes -------------------------------------------------------------------------------------


def _numbers(text: str) -> str:
    """``text`` as a regex: literal, except that every number matches any number."""
    parts = NUMBER_IN_TEXT.split(text)
    return NUMBER.join(re.escape(part) for part in parts)


def _token(token: str) -> str:
    if token == "...":
        return ".*"
    pieces = token.split("...")
    regex: list[str] = []
    for k, piece in enumerate(pieces):
        kept = piece.lstrip(ALNUM) if k else piece
        kept = kept.rstrip(ALNUM) if k < len(pieces) - 1 else kept
        regex.append(_numbers(kept))
    return r"\S*".join(regex)


def line_pattern(shown: str) -> re.Pattern[str]:
    """A shown line as a regex over a whitespace-normalised real line."""
    tokens = shown.split()
    regex = ""
    for k, token in enumerate(tokens):
        if k:
            loose = token == "..." or tokens[k - 1] == "..."
            regex += r"\s*" if loose else r"\s+"
        regex += _token(token)
    return re.compile(regex)


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


def _cells(line: str, bar: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip(bar).split(bar)]


def _merge(into: list[str], more: list[str]) -> None:
    for k, text in enumerate(more[: len(into)]):
        into[k] = f"{into[k]} {text}".strip()


def tables(lines: list[str]) -> list[Table]:
    """The rich tables in ``lines``: header cells and logical rows (wrapped cells joined)."""
    found: list[Table] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("┏"):
            found.append(Table([]))
        elif found and stripped.startswith("┃"):
            cells = _cells(stripped, "┃")
            if found[-1].header:
                _merge(found[-1].header, cells)
            else:
                found[-1].header = cells
        elif found and stripped.startswith("│"):
            cells = _cells(stripped, "│")
            if cells[0] or not found[-1].rows:
                found[-1].rows.append(cells)
            else:
                _merge(found[-1].rows[-1], cells)
    return found


def _is_box(line: str) -> bool:
    return line.strip()[:1] in BOX


def _json_pairs(value: object) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            pairs.append((str(key), inner))
            pairs += _json_pairs(inner)
    elif isinstance(value, list):
        for inner in value:
            pairs += _json_pairs(inner)
    return pairs


def json_problems(shown: list[str], actual: str) -> list[str]:
    """Shown JSON (possibly cut with ``...``) against real JSON: keys and text values."""
    try:
        real = json.loads(actual)
    except json.JSONDecodeError:
        return [f"the doc shows JSON, the command printed: {actual[:300]!r}"]
    text = " ".join(" ".join(shown).split())
    if text[:1] == "{" and not isinstance(real, dict):
        return [f"the doc shows a JSON object, the command printed {actual[:300]!r}"]
    pairs = _json_pairs(real)
    keys = {key for key, _ in pairs}
    problems = [
        f"key {key!r} is shown but not in the output {actual[:300]!r}"
        for key in re.findall(r'"([^"\\]+)"\s*:', text)
        if key not in keys
    ]
    for key, value in re.findall(r'"([^"\\]+)"\s*:\s*"((?:[^"\\]|\\.)*)"', text):
        pattern = line_pattern(value)
        values = [" ".join(str(v).split()) for k, v in pairs if k == key and isinstance(v, str)]
        if key in keys and not any(pattern.fullmatch(v) for v in values):
            problems.append(f"{key!r} is shown as {value!r}, the output has {values}")
    return problems


def shape_problems(shown: list[str], actual: str, home: str) -> list[str]:
    """Why ``actual`` does not have the shape of ``shown`` (empty: it has)."""
    shown = [line.replace("/home/me", home) for line in shown if line.strip()]
    if not shown:
        return []
    if shown[0].lstrip()[:1] in "{[":
        return json_problems(shown, actual)
    real = actual.splitlines()
    problems = _text_problems([x for x in shown if not _is_box(x)], real)
    real_tables = tables(real)
    for table in tables(shown):
        same = [t for t in real_tables if t.header == table.header]
        if not same:
            headers = [t.header for t in real_tables]
            problems.append(f"no table with the columns {table.header}; tables: {headers}")
            continue
        for row in table.rows:
            patterns = [line_pattern(cell) for cell in row]
            if not any(_row_matches(patterns, r) for t in same for r in t.rows):
                problems.append(f"no row like {row} in {[r for t in same for r in t.rows]}")
    return problems


def _row_matches(patterns: list[re.Pattern[str]], row: list[str]) -> bool:
    return len(patterns) == len(row) and all(
        p.fullmatch(" ".join(cell.split())) for p, cell in zip(patterns, row, strict=True)
    )


def _text_problems(shown: list[str], real: list[str]) -> list[str]:
    """Each shown line must match a real line, in the order shown (other lines may be between)."""
    lines = [" ".join(line.translate(UNBOX).split()) for line in real]
    at = 0
    for text in shown:
        if text.strip() == "..." or not text.strip(SEPARATORS):
            continue
        pattern = line_pattern(text)
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return [
                f"no line like {text.strip()!r} (in this order) in the output:\n" + "\n".join(real)
            ]
        at += 1
    return []
