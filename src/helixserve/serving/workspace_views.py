"""What the run, compare and deploy parts of the workspace pages show, computed from the database
rows and the run's bundle.

Contract:
- :func:`points` are a run's epochs as the live event stream sends them (``epoch``,
  ``train_loss``, ``val_loss``, ``metrics``, ``at``); :func:`best_epoch` is the run's recorded
  best epoch, else the epoch of the lowest validation loss so far; :func:`eta_seconds` estimates
  the time left of a running run from its last epochs' durations and the epochs planned;
  :func:`curve_svg` draws the curves (:func:`helixserve.serving.charts.loss`), best epoch marked.
- :func:`bundle_view` reads a finished run's bundle from the runs store: test metrics, the
  evaluation plots (:func:`helixserve.serving.ui.draw_plots`), per-class metrics; a bundle that
  cannot be read gives a message instead (never an error page).
- :func:`usage` gives the exact calls for a deployed model: curl and Python on the domain API,
  curl on the Open Inference Protocol's REST route, and ``tritonclient`` over gRPC, with the key
  header when API keys are on (the key itself is never shown: it is read from
  ``$HELIXSERVE_API_KEY``). The example input is the bundle's first example when it has one.
- :func:`compare_view` lays a :class:`~helixserve.workspace.compare.Comparison` out for the page:
  labels, overlaid curves, metric rows and setting rows, those in ``differs`` marked.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from helixserve.errors import HelixError
from helixserve.inputs.images import ImageSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.serving import charts
from helixserve.serving.ui import draw_plots, figure
from helixserve.store.manifest import Manifest
from helixserve.workspace.compare import Comparison, RunSummary
from helixserve.workspace.models import Run, RunEpoch, RunStatus
from helixserve.workspace.space import Workspace

RECENT_EPOCHS = 10
KEY_ENV = "HELIXSERVE_API_KEY"


def points(epochs: Sequence[RunEpoch]) -> list[dict[str, Any]]:
    """A run's epochs as plain data (the ``epoch`` events' data)."""
    return [
        {
            "epoch": e.epoch,
            "train_loss": e.train_loss,
            "val_loss": e.val_loss,
            "metrics": e.metrics,
            "at": e.at.isoformat(),
        }
        for e in epochs
    ]


def best_epoch(run: Run, shown: Sequence[dict[str, Any]]) -> int | None:
    """The recorded best epoch, else the one with the lowest validation loss so far."""
    if run.best_epoch is not None:
        return run.best_epoch
    scored = [(p["val_loss"], p["epoch"]) for p in shown if p["val_loss"] is not None]
    return min(scored)[1] if scored else None


def eta_seconds(run: Run, shown: Sequence[dict[str, Any]]) -> float | None:
    """Seconds left of a running run: the mean of its last epochs' durations times the epochs
    still planned (None when it cannot be told)."""
    if run.status is not RunStatus.RUNNING or not shown or not run.epochs_planned:
        return None
    times = [datetime.fromisoformat(p["at"]) for p in shown]
    if run.started_at is not None:
        times.insert(0, run.started_at)
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    if not steps:
        return None
    recent = steps[-RECENT_EPOCHS:]
    left = max(run.epochs_planned - int(shown[-1]["epoch"]), 0)
    return sum(recent) / len(recent) * left


def duration_text(seconds: float | None) -> str:
    """``about 2 min 5 s`` (``""`` for None)."""
    if seconds is None:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"about {whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"about {minutes} min {rest} s"
    return f"about {minutes // 60} h {minutes % 60} min"


def curve_svg(shown: Sequence[dict[str, Any]], best: int | None) -> str:
    """Train and validation loss per epoch (``""`` before the first epoch)."""
    train = [p["train_loss"] for p in shown if p["train_loss"] is not None]
    val = [p["val_loss"] for p in shown if p["val_loss"] is not None]
    if not train and not val:
        return ""
    return charts.loss([("", {"train_loss": train, "val_loss": val, "best_epoch": best})])


@dataclass
class BundleView:
    """A finished run's evaluation: test metrics, plots, per-class rows, or why it is missing."""

    metrics: dict[str, float]
    plots: dict[str, Any]
    per_class: list[tuple[str, dict[str, float]]]
    manifest: Manifest | None = None
    examples: list[Any] | None = None
    problem: str = ""


def bundle_view(space: Workspace, run: Run) -> BundleView | None:
    """The evaluation views of ``run``'s bundle (None while it has none)."""
    if run.bundle is None:
        return None
    try:
        manifest, files = space.runs.read_files(run.bundle)
    except HelixError as err:
        return BundleView({}, {}, [], problem=f"the run's bundle cannot be read: {err}")
    extra = _json(files.get("metrics.json")) or {}
    per_class = extra.get("per_class") if isinstance(extra, dict) else None
    rows = [
        (str(label), {k: float(v) for k, v in values.items()})
        for label, values in (per_class or {}).items()
        if isinstance(values, dict)
    ]
    examples = _json(files.get("examples.json")) or {}
    found = [e.get("input") for e in examples.get("examples", []) if isinstance(e, dict)]
    return BundleView(dict(manifest.metrics), draw_plots(files.get), rows, manifest, found)


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


# --- how to call a deployed model -------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    title: str
    code: str


def _example(manifest: Manifest, examples: Sequence[Any] | None) -> Any:
    """One input for the calls: the bundle's first example, else a made-up one."""
    schema = manifest.input
    for example in examples or []:
        if isinstance(schema, TabularSchema) and isinstance(example, dict):
            return example
        if not isinstance(schema, TabularSchema | ImageSchema) and isinstance(example, str):
            return example
    if isinstance(schema, TabularSchema):
        return {f.name: 1 for f in schema.features}
    if isinstance(schema, ImageSchema):
        return "<base64 of a PNG, JPEG or TIFF file>"
    return "ACGT" * 12 + "AC"


def _oip_input(manifest: Manifest, example: Any) -> dict[str, Any]:
    schema = manifest.input
    if isinstance(schema, TabularSchema):
        row = [float(example.get(f.name, 0)) for f in schema.features]
        return {"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}
    name = "image" if isinstance(schema, ImageSchema) else "sequence"
    return {"name": name, "shape": [1], "datatype": "BYTES", "data": [example]}


def usage(
    base_url: str,
    grpc_target: str | None,
    model: str,
    version: int,
    bundle: BundleView,
    keys_on: bool,
) -> list[Snippet]:
    """The calls for ``model@version`` (see the module contract)."""
    manifest = bundle.manifest
    if manifest is None:
        return []
    example = _example(manifest, bundle.examples)
    snippets = _rest(base_url.rstrip("/"), model, version, manifest, example, keys_on)
    if grpc_target is not None:
        code = _grpc(grpc_target, model, version, manifest, example, keys_on)
        snippets.append(Snippet("gRPC (tritonclient)", code))
    return snippets


def _rest(
    base: str, model: str, version: int, manifest: Manifest, example: Any, keys_on: bool
) -> list[Snippet]:
    """curl and Python on the domain API, curl on the Open Inference Protocol's REST route."""
    body = json.dumps({"inputs": [example]})
    key_curl = f' \\\n  -H "X-API-Key: ${KEY_ENV}"' if keys_on else ""
    key_py = f', headers={{"X-API-Key": os.environ["{KEY_ENV}"]}}' if keys_on else ""
    url = f"{base}/api/v1/models/{model}/predict?version={version}"
    oip = json.dumps({"inputs": [_oip_input(manifest, example)]})
    oip_url = f"{base}/v2/models/{model}/versions/{version}/infer"
    json_header = "-H 'Content-Type: application/json'"
    inputs = {"inputs": [example]}
    python = (
        ("import os, httpx" if keys_on else "import httpx")
        + f'\n\nanswer = httpx.post(\n    "{url}",\n    json={inputs!r}{key_py},\n)\n'
        + 'print(answer.json()["predictions"])'
    )
    return [
        Snippet(
            "curl (REST API)", f"curl -s '{url}' \\\n  {json_header}{key_curl} \\\n  -d '{body}'"
        ),
        Snippet("Python (REST API)", python),
        Snippet(
            "Open Inference Protocol (REST)",
            f"curl -s '{oip_url}' \\\n  {json_header}{key_curl} \\\n  -d '{oip}'",
        ),
    ]


def _grpc(
    target: str, model: str, version: int, manifest: Manifest, example: Any, keys_on: bool
) -> str:
    tensor = _oip_input(manifest, example)
    output = "value" if manifest.task == "regression" else "probabilities"
    if tensor["datatype"] == "FP32":
        data = f"np.array([{tensor['data']}], dtype=np.float32)"
    else:
        data = f"np.array([{json.dumps(example)}.encode()], dtype=object)"
    headers = f', headers={{"x-api-key": os.environ["{KEY_ENV}"]}}' if keys_on else ""
    return (
        ("import os\n" if keys_on else "")
        + "import numpy as np\nimport tritonclient.grpc as grpcclient\n\n"
        f'client = grpcclient.InferenceServerClient("{target}")\n'
        f'x = grpcclient.InferInput("{tensor["name"]}", {tensor["shape"]}, '
        f'"{tensor["datatype"]}")\n'
        f"x.set_data_from_numpy({data})\n"
        f'result = client.infer("{model}", [x], model_version="{version}"{headers})\n'
        f'print(result.as_numpy("{output}"))'
    )


# --- compare ----------------------------------------------------------------------------------


@dataclass
class CompareView:
    labels: list[str]
    curves: str
    metrics: list[tuple[str, list[str]]]
    settings: list[tuple[str, list[str], bool]]


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _default(run: RunSummary, key: str) -> str:
    return " (default)" if key in run.defaults else ""


def compare_view(comparison: Comparison) -> CompareView:
    """See the module contract."""
    runs = comparison.runs
    labels = [f"{r.experiment} #{r.number}" for r in runs]
    drawn = [
        (
            label,
            {
                "train_loss": [p.train_loss for p in r.curve if p.train_loss is not None],
                "val_loss": [p.val_loss for p in r.curve if p.val_loss is not None],
            },
        )
        for label, r in zip(labels, runs, strict=True)
        if r.curve
    ]
    try:
        curves = charts.loss(drawn) if drawn else ""
    except ValueError:
        curves = ""
    metrics = [
        (name, [figure(r.metrics[name]) if name in r.metrics else "—" for r in runs])
        for name in comparison.metric_names
    ]
    keys = sorted(
        {k for r in runs for k in r.settings}, key=lambda k: (k not in comparison.differs, k)
    )
    settings = [
        (k, [_shown(r.settings.get(k)) + _default(r, k) for r in runs], k in comparison.differs)
        for k in keys
    ]
    return CompareView(labels, curves, metrics, settings)
