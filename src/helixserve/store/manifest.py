"""The bundle manifest (``manifest.json``): the contract between training and everything else.

Contract:
- :class:`Manifest` is a pydantic model: manifest ``format_version``, name, integer version, task
  (``binary`` / ``multiclass`` / ``multilabel`` / ``regression``), input schema (a
  ``SequenceSchema``, ``TabularSchema`` or ``ImageSchema`` from :mod:`helixserve.inputs`, told
  apart by ``kind``), the ONNX input name,
  the output schema (labels, units, threshold, ONNX output name), metrics, training-data sha256,
  creation time, library versions, and the sha256 of every other file of the bundle.
- Format 2 adds, all optional (a format-1 manifest still reads): ``headline`` (the metric a model
  is judged by, a key of ``metrics``, with what it means, and where one exists the
  out-of-distribution figure), ``lineage`` (the parent ``name@version`` and how this version was
  made from it) and the optional ``examples.json`` file (the self-test: inputs and the outputs the
  exported model gave, see :mod:`helixserve.runtime.selftest`). :func:`headline_of` gives every
  edge the same headline, also for a manifest without one (R² for regression, macro AUROC for
  multilabel, accuracy else).
- Labels per task (:func:`label_problem`, which training may call before it trains): binary
  exactly 2 ``[negative, positive]``; multiclass 2 or more; multilabel 2 or more label columns,
  each named once, none empty or holding :data:`LABEL_SEPARATOR` (the character that joins a
  prediction's labels in CSV cells); regression none. A multilabel model outputs ``(N, L)``
  independent probabilities (sigmoid inside the graph) and ``output.threshold`` applies to each
  label.
- :func:`parse_manifest` reads bytes and raises :class:`~helixserve.errors.ManifestError` naming
  the first bad field, saying the bytes are not JSON (also for JSON nested too deep, or with an
  integer too long to convert), or that the manifest was written by a newer helixserve (format
  version above :data:`FORMAT_VERSION`) and how to fix that; an unsafe model name raises
  :class:`~helixserve.errors.InvalidName`. Nothing else escapes, whatever the bytes.
- File paths in ``files`` are relative POSIX paths without ``..``: a manifest cannot point outside
  its bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from helixserve.errors import ManifestError
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.store.names import check_name

FORMAT_VERSION = 2
Task = Literal["binary", "multiclass", "multilabel", "regression"]
LABEL_SEPARATOR = ";"
InputSchema = Annotated[SequenceSchema | TabularSchema | ImageSchema, Field(discriminator="kind")]
_SHA256 = r"^[0-9a-f]{64}$"
_PARENT = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}@[1-9][0-9]{0,8}$"


class OutputSchema(BaseModel):
    """How to read the model's output tensor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: list[str] | None = Field(
        default=None, description="class labels, in output order (binary: [negative, positive])"
    )
    units: str | None = Field(default=None, description="unit of a regression value")
    threshold: float = Field(
        default=0.5, gt=0, lt=1, description="decision threshold (binary; multilabel: per label)"
    )
    onnx_output: str | None = Field(default=None, description="ONNX output name; default: first")


class Headline(BaseModel):
    """The figure a model is judged by: a key of the manifest's ``metrics`` and what it means."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(min_length=1, description="key of metrics, e.g. r2 or isolate_accuracy")
    meaning: str = Field(min_length=1, description="what the figure measures, on which rows")
    ood_metric: str | None = Field(
        default=None, description="key of metrics: the figure on data unlike the training data"
    )
    ood_meaning: str | None = None


How = Literal["trained", "init-from", "resume", "quantize", "import", "refit"]


class Lineage(BaseModel):
    """Where a version came from: its parent ``name@version`` (if any) and how it was made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    how: How
    parent: str | None = Field(default=None, pattern=_PARENT, description="name@version")
    source: str | None = Field(default=None, description="e.g. the imported file, sha256")
    details: dict[str, float | str] = Field(default_factory=dict)


class Manifest(BaseModel):
    """``manifest.json`` of a bundle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = Field(default=FORMAT_VERSION, ge=1, le=FORMAT_VERSION, strict=True)
    name: str
    version: int = Field(ge=1)
    task: Task
    description: str = ""
    input: InputSchema
    onnx_input: str = "input"
    output: OutputSchema = OutputSchema()
    metrics: dict[str, float] = Field(default_factory=dict)
    training_data_sha256: str | None = Field(default=None, pattern=_SHA256)
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    library_versions: dict[str, str] = Field(default_factory=dict)
    files: dict[str, Annotated[str, Field(pattern=_SHA256)]] = Field(default_factory=dict)
    headline: Headline | None = None
    lineage: Lineage | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, files: dict[str, str]) -> dict[str, str]:
        for path in files:
            parts = path.split("/")
            if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
                raise ValueError(f"file path {path!r} must be relative, without '..' or '\\'")
            if path == "manifest.json":
                raise ValueError("manifest.json cannot list itself")
        return files

    @model_validator(mode="after")
    def _labels_match_task(self) -> Self:
        problem = label_problem(self.task, self.output.labels)
        if problem is not None:
            raise ValueError(problem)
        missing = [f for f in ("model.onnx", "card.md") if f not in self.files]
        if missing:
            raise ValueError(f"files must include model.onnx and card.md; missing {missing}")
        if self.headline is not None:
            for key in (self.headline.metric, self.headline.ood_metric):
                if key is not None and key not in self.metrics:
                    raise ValueError(f"headline metric {key!r} is not one of the metrics")
        return self

    def to_json(self) -> bytes:
        """Canonical JSON bytes (sorted keys, 2-space indent, trailing newline)."""
        data = self.model_dump(mode="json")
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def label_problem(task: Task, labels: list[str] | None) -> str | None:
    """What is wrong with ``labels`` for a ``task`` model, or ``None`` when they fit."""
    if task == "binary" and (labels is None or len(labels) != 2):
        return "a binary model needs exactly 2 output labels [negative, positive]"
    if task == "multiclass" and (labels is None or len(labels) < 2):
        return "a multiclass model needs 2 or more output labels"
    if task == "regression":
        return None if labels is None else "a regression model has no output labels (use 'units')"
    if task == "multilabel":
        return _multilabel_problem(labels or [])
    return None


def _multilabel_problem(labels: list[str]) -> str | None:
    if len(labels) < 2:
        return (
            f"a multilabel model needs 2 or more output labels (one per label column), got "
            f"{len(labels)}; a single yes/no label is a binary model"
        )
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        return f"the output labels of a multilabel model must differ; {repeated[0]!r} is repeated"
    bad = [label for label in labels if not label.strip() or LABEL_SEPARATOR in label]
    if bad:
        return (
            f"output label {bad[0]!r} of a multilabel model is empty or holds "
            f"{LABEL_SEPARATOR!r}, which joins a prediction's labels in CSV cells; rename it"
        )
    return None


def parse_manifest(data: bytes, where: str = "manifest.json") -> Manifest:
    """Parse and validate manifest bytes; see the module contract."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as err:  # not UTF-8, not JSON, too deep, int too long
        reason = str(err)[:200] or type(err).__name__
        raise ManifestError(
            f"{where} is not valid JSON ({reason}); the bundle is damaged."
        ) from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} must hold a JSON object, got {type(raw).__name__}.")
    version = raw.get("format_version", FORMAT_VERSION)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ManifestError(
            f"{where} has manifest format {version}, newer than this helixserve understands "
            f"({FORMAT_VERSION}); upgrade helixserve to read this model."
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ManifestError(
            f"{where} is not a valid manifest: {field}: {first['msg']} "
            f"({err.error_count()} problem{'s' if err.error_count() != 1 else ''} in all)."
        ) from None


@dataclass(frozen=True)
class HeadlineFigure:
    """A model's headline as every edge shows it (see :func:`headline_of`)."""

    metric: str
    value: float | None
    meaning: str
    ood_metric: str | None = None
    ood_value: float | None = None
    ood_meaning: str | None = None

    @property
    def text(self) -> str:
        """``r2 0.596`` (or ``r2 -`` when the model has no such figure)."""
        shown = "-" if self.value is None else f"{self.value:.3f}"
        return f"{self.metric} {shown}"

    @property
    def ood_text(self) -> str | None:
        """``external_accuracy 0.750``, or ``None`` without an out-of-distribution figure."""
        if self.ood_metric is None or self.ood_value is None:
            return None
        return f"{self.ood_metric} {self.ood_value:.3f}"


_DEFAULT_HEADLINES: dict[str, tuple[str, str]] = {
    "regression": ("r2", "R² on the held-out test set"),
    "multilabel": ("auroc", "AUROC on the test set, the mean over the labels"),
    "binary": ("accuracy", "accuracy on the test set"),
}


def headline_of(manifest: Manifest) -> HeadlineFigure:
    """The manifest's own headline, else R² (regression), macro AUROC (multilabel) or accuracy
    on the test set."""
    chosen = manifest.headline
    if chosen is None:
        metric, meaning = _DEFAULT_HEADLINES.get(manifest.task, _DEFAULT_HEADLINES["binary"])
        chosen = Headline(metric=metric, meaning=meaning) if metric in manifest.metrics else None
    if chosen is None:
        return HeadlineFigure(metric="-", value=None, meaning="no test-set figure was recorded")
    ood = chosen.ood_metric
    return HeadlineFigure(
        metric=chosen.metric,
        value=manifest.metrics.get(chosen.metric),
        meaning=chosen.meaning,
        ood_metric=ood,
        ood_value=manifest.metrics.get(ood) if ood else None,
        ood_meaning=chosen.ood_meaning,
    )
