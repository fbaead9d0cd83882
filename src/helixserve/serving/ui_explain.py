"""The UI's explain pages for DNA models: a variant-effect table and a sequence-design page.

Contract:
- ``/models/{name}/variants``: a sequence plus variants, typed one per line as
  ``position ref alt`` (1-based; commas or spaces between; ``-`` for no bases, e.g. a deletion)
  and/or uploaded as a CSV/TSV with a header naming ``position`` (or ``pos``), ``ref``, ``alt``
  and optionally ``id``. The answer is a table sorted by ``|change|``: variant, reference check,
  predicted score ref -> alt, change. A variant whose ``ref`` does not match (or that the model
  cannot take) is one refused row with :class:`~helixserve.explain.ism.InvalidVariant`'s message;
  the others are still scored. A variant list that cannot be read is a field error naming the line.
- ``/models/{name}/design``: start sequence, goal (max, min or a target value), rounds (1 to
  :data:`MAX_ROUNDS`; a start of at most :data:`MAX_DESIGN_NT` nt and rounds x length at most
  :data:`MAX_DESIGN_WORK`, so one page cannot hold the model's batch thread for minutes), fixed
  positions (``1, 5-10``), forbidden motifs, GC range; the answer is the trajectory as an SVG
  line chart and a table (round, change, sequence with the changed base marked, score).
- Both are plain form posts rendered on the server (``static/app.js`` only adds live checks), every
  error is shown next to its field (status 422), and both answer 404 for models that do not take
  DNA; the work runs in the model's batch thread, off the event loop. Behind API keys both need
  the UI's key session, like every page. The routes are in
  :mod:`helixserve.serving.routes.ui_explain`; this module reads the forms and shapes the answers.
"""

from __future__ import annotations

import asyncio
import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from starlette.datastructures import UploadFile

from helixserve.errors import InputError
from helixserve.explain.design import Step, design
from helixserve.explain.ism import Variant, VariantOutcome, allele_bases
from helixserve.serving import charts
from helixserve.serving.registry import LoadedModel
from helixserve.serving.schemas import MAX_VARIANTS
from helixserve.serving.ui import sequence_from_text

MAX_ROUNDS = 60
MAX_DESIGN_NT = 200
MAX_DESIGN_WORK = 3_000  # rounds x sequence length: 60 rounds of a 50-nt UTR
DESIGN_FIELDS = ("goal", "target_value", "rounds", "fixed", "forbid", "gc")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Listed:
    """A variant as the user listed it, with an optional id."""

    variant: Variant
    id: str = ""

    @property
    def label(self) -> str:
        v = self.variant
        return f"{v.position} {v.ref}>{v.alt or '-'}"


@dataclass(frozen=True)
class VariantRow:
    number: int
    listed: Listed
    problem: str | None
    ref_score: float
    alt_score: float | None
    change: float | None


def score_words(model: LoadedModel) -> str:
    """What the score of a model is, in words (see the explain contract)."""
    manifest = model.manifest
    if manifest.task == "regression":
        units = f" ({manifest.output.units})" if manifest.output.units else ""
        return f"predicted value{units}"
    if manifest.task == "binary" and manifest.output.labels:
        return f"P({manifest.output.labels[-1]})"
    if manifest.task == "multilabel":
        return "probability of the label most probable for the unchanged sequence"
    return "probability of the predicted class"


def _position(text: str, where: str, field: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InputError(
            f"{where}: position {text!r} is not a whole number from 1; positions are 1-based.",
            field=field,
        )
    return int(text)


def parse_variant_text(text: str) -> list[Listed]:
    """Variants typed one per line as ``position ref alt``; blank and ``#`` lines are skipped."""
    listed = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p for p in re.split(r"[\s,]+", line) if p]
        if len(parts) != 3:
            raise InputError(
                f"line {number}: expected 'position ref alt' (e.g. '12 A G'; '-' "
                f"for no bases), got {line!r}.",
                field="variants",
            )
        position = _position(parts[0], f"line {number}", "variants")
        listed.append(Listed(Variant(position, allele_bases(parts[1]), allele_bases(parts[2]))))
    return listed


def parse_variant_csv(data: bytes, filename: str) -> list[Listed]:
    """Variants from a CSV/TSV with a header naming position (or pos), ref, alt and maybe id."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            f"{filename} is not UTF-8 text; upload a CSV with columns position, "
            "ref, alt (and optionally id).",
            field="file",
        ) from None
    lines = text.splitlines()
    tab = filename.lower().endswith(".tsv") or (
        bool(lines) and "\t" in lines[0] and "," not in lines[0]
    )
    reader = csv.reader(lines, delimiter="\t" if tab else ",")
    header = [h.strip().lower() for h in next(reader, [])]
    columns = {
        name: header.index(name)
        for name in ("pos", "position", "ref", "alt", "id")
        if name in header
    }
    at = columns.get("position", columns.get("pos"))
    if at is None or "ref" not in columns or "alt" not in columns:
        raise InputError(
            f"{filename} needs a header row with columns position, ref, alt (and "
            f"optionally id); it has: {', '.join(header) or 'nothing'}.",
            field="file",
        )
    listed = []
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = [c.strip() for c in row] + [""] * len(header)
        where = f"line {number} of {filename}"
        position = _position(cells[at], where, "file")
        variant = Variant(
            position, allele_bases(cells[columns["ref"]]), allele_bases(cells[columns["alt"]])
        )
        listed.append(Listed(variant, cells[columns["id"]] if "id" in columns else ""))
    return listed


def variant_rows(
    reference: float, outcomes: list[VariantOutcome], listed: list[Listed]
) -> list[VariantRow]:
    """Scored rows by decreasing ``|change|``, then the refused ones in the order listed."""
    rows = [
        VariantRow(
            o.number,
            item,
            None if o.error is None else str(o.error),
            reference,
            None if o.change is None else reference + o.change,
            o.change,
        )
        for o, item in zip(outcomes, listed, strict=True)
    ]
    scored = sorted((r for r in rows if r.change is not None), key=lambda r: -abs(r.change or 0))
    return scored + [r for r in rows if r.change is None]


def _float(text: str, field: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{what} must be a number, got {text!r}.", field=field)
    return value


def _fixed(text: str) -> list[int]:
    positions: list[int] = []
    for part in (p for p in re.split(r"[\s,]+", text.strip()) if p):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise InputError(
                f"fixed positions are 1-based numbers or ranges like 5-10, "
                f"separated by commas; {part!r} is neither.",
                field="fixed",
            )
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        positions.extend(range(low, high + 1))
    return positions


def _guarded(errors: dict[str, str], make: Callable[[], _T], default: _T) -> _T:
    """``make()``, or ``default`` with the error recorded under its field."""
    try:
        return make()
    except InputError as err:
        errors[err.field or "start"] = str(err)
        return default


def _rounds(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or not 1 <= int(text) <= MAX_ROUNDS:
        raise InputError(
            f"rounds must be a whole number from 1 to {MAX_ROUNDS}, got {text.strip()!r}.",
            field="rounds",
        )
    return int(text)


def _goal(goal: str, target: str) -> str:
    if goal in ("max", "min"):
        return goal
    if goal != "target":
        raise InputError(f"goal must be max, min or target, got {goal!r}.", field="goal")
    if not target.strip():
        raise InputError(
            "enter the score to aim for (a number) when the goal is a target.", field="target_value"
        )
    return f"target={_float(target, 'target_value', 'the target score')}"


def design_arguments(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The keyword arguments of :func:`design` from the form, and the errors per field."""
    errors: dict[str, str] = {}
    start = sequence_from_text(values.get("start", ""))
    if len(start) > MAX_DESIGN_NT:
        errors["start"] = (
            f"the design page takes sequences up to {MAX_DESIGN_NT} nt (this "
            f"one is {len(start):,} nt); use the design API for longer ones."
        )
    goal = _guarded(
        errors, lambda: _goal(values.get("goal", "max"), values.get("target_value", "")), "max"
    )
    rounds = _guarded(errors, lambda: _rounds(values.get("rounds", "10")), 1)
    if "rounds" not in errors and "start" not in errors and rounds * len(start) > MAX_DESIGN_WORK:
        errors["rounds"] = (
            f"{rounds} rounds of a {len(start)}-nt sequence is more than this "
            f"page runs (rounds x length up to {MAX_DESIGN_WORK:,}); use at most "
            f"{MAX_DESIGN_WORK // len(start)} rounds, or the design API."
        )
    fixed: list[int] = _guarded(errors, lambda: _fixed(values.get("fixed", "")), [])
    forbid = [m.upper() for m in re.split(r"[\s,]+", values.get("forbid", "")) if m]
    low = _guarded(
        errors,
        lambda: _float(values.get("gc_min", "0") or "0", "gc", "the lowest GC fraction"),
        0.0,
    )
    high = _guarded(
        errors,
        lambda: _float(values.get("gc_max", "1") or "1", "gc", "the highest GC fraction"),
        1.0,
    )
    kwargs = {
        "start": start,
        "goal": goal,
        "rounds": rounds,
        "fixed": fixed,
        "forbid": forbid,
        "gc": (low, high),
    }
    return kwargs, errors


@dataclass(frozen=True)
class TrajectoryRow:
    round: int
    change: str | None
    score: float
    gain: float | None
    before: str  # the sequence up to the changed base (all of it in round 0)
    base: str
    after: str
    gc: float


def trajectory_rows(steps: list[Step]) -> list[TrajectoryRow]:
    """Per round: the change, the sequence split around the changed base, score and gain."""
    rows: list[TrajectoryRow] = []
    for step in steps:
        seq = step.sequence
        at = int(step.change[1:-1]) - 1 if step.change else len(seq)
        gain = step.score - rows[-1].score if rows else None
        rows.append(
            TrajectoryRow(
                step.round,
                step.change,
                step.score,
                gain,
                seq[:at],
                seq[at : at + 1],
                seq[at + 1 :],
                sum(c in "GC" for c in seq) / max(len(seq), 1),
            )
        )
    return rows


async def in_batch_thread(
    model: LoadedModel, fn: Callable[..., _T], *args: Any, **kwargs: Any
) -> _T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(model.batcher.executor, partial(fn, *args, **kwargs))


async def listed_variants(form: Any, errors: dict[str, str]) -> list[Listed]:
    text = str(form.get("variants") or "")
    listed: list[Listed] = _guarded(errors, lambda: parse_variant_text(text), [])
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read()
        name = upload.filename
        from_file: list[Listed] = _guarded(errors, lambda: parse_variant_csv(data, name), [])
        listed += from_file
    if not listed and not errors:
        errors["variants"] = (
            "enter at least one variant (one per line: position ref alt, "
            "e.g. '12 A G'), or upload a CSV with columns position, ref, alt."
        )
    elif len(listed) > MAX_VARIANTS:
        errors["variants"] = (
            f"at most {MAX_VARIANTS:,} variants per request, got {len(listed):,}; split the list."
        )
    return listed


async def designed(
    model: LoadedModel, kwargs: dict[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    """The design's trajectory (steps, table rows, chart), or {} with the error recorded."""
    try:
        steps = await in_batch_thread(model, design, model.predictor, **kwargs)
    except InputError as err:
        errors[err.field if err.field in DESIGN_FIELDS else "start"] = str(err)
        return {}
    goal = str(kwargs["goal"])
    target = float(goal.removeprefix("target=")) if goal.startswith("target=") else None
    chart = charts.trajectory(
        [s.round for s in steps], [s.score for s in steps], score_words(model), target
    )
    return {"steps": steps, "rows": trajectory_rows(steps), "chart": chart}
