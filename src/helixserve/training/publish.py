"""From data to a published, checked bundle: the steps every recipe shares.

Contract: :func:`train_and_publish` lets the recipe decide what the data decide
(:meth:`~helixserve.training.recipes.base.Recipe.adapt`: e.g. the input length; once per
recipe), encodes the validated inputs with the recipe's schema (exactly as the served model
will), fits on the train split (early stopping on the validation
split), evaluates on the test split, exports ONNX and checks parity with the native model on the
test set (max abs difference <= 1e-4, else :class:`~helixserve.training.export.TrainingError`
and nothing is published), writes the card, ``history.json`` (rewritten after every epoch into
``work_dir`` too, for live curves; ``helixserve train`` uses ``<cache>/../runs/<name>`` unless
``--work-dir`` says otherwise; ``on_epoch``, when given, is called with the history after every
epoch of a neural recipe, once the checkpoint of that epoch is written: an exception it raises
ends training there, nothing is published, and the checkpoint stays), ``metrics.json`` and the
plots, publishes the bundle as the next version of ``name``, then loads it back through the
store with a :class:`~helixserve.runtime.Predictor` and checks that it predicts the raw test
inputs like the native model and refuses a bad input. It returns an :class:`Outcome`.

The bundle also carries, from training time: self-test examples (``examples.json``: up to
:data:`EXAMPLES` raw test inputs, one per class first, with the outputs the exported model gave
when served), the lineage (``trained`` unless the caller says otherwise) and the headline
(:func:`choose_headline`: R² for regression, accuracy for classifiers, macro AUROC for
multi-label models, isolate accuracy for multiple-instance recipes, each with the rows it was
measured on; the external rows' accuracy as the out-of-distribution figure when there are
external rows). The task comes from the targets: several label columns
(:attr:`~helixserve.training.data.Dataset.label_columns`) make a multi-label model, whose
metrics are :func:`~helixserve.training.metrics.multilabel_metrics`. The recipe's
:attr:`~helixserve.training.recipes.base.Recipe.notes` (the input rule it chose, warnings, a
refit) go into the card and :attr:`Outcome.notes`.

Recipe-specific steps go through the hooks of :class:`~helixserve.training.recipes.base.Recipe`:
``use_work_dir`` (checkpoints), and for a recipe that ``learns_from_bags()`` (multiple-instance,
:attr:`Dataset.groups` naming each record's bag) ``use_bags`` with each training and validation
row's bag id before fitting; their metrics then also hold the
isolate-level figures of :func:`isolate_figures` (``isolate_*``: the threshold chosen on the
training and validation bags, and the test bags' calls).
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import sklearn

from helixserve import __version__
from helixserve.inputs.encoding import encode_batch
from helixserve.inputs.images import decode_image
from helixserve.inputs.records import BadRecord
from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema, rows_to_array, validate_row
from helixserve.runtime.predictor import ItemError, Predictor
from helixserve.runtime.selftest import EXAMPLES_FILE, make_examples
from helixserve.store.bundle import make_manifest
from helixserve.store.manifest import Headline, Lineage, Manifest, OutputSchema
from helixserve.store.store import LocalBundle, ModelStore
from helixserve.training import plots
from helixserve.training.data import Dataset, Split, Task, encode_targets
from helixserve.training.export import TrainingError, check_parity, run_onnx
from helixserve.training.isolates import (
    bag_labels,
    choose_threshold,
    isolate_metrics,
    isolate_scores,
)
from helixserve.training.loop import History, stage
from helixserve.training.metrics import (
    classification_metrics,
    multilabel_metrics,
    regression_metrics,
    scalars,
)
from helixserve.training.recipes.base import Recipe

EXAMPLES = 8


@dataclass
class Outcome:
    manifest: Manifest
    metrics: dict[str, Any]
    history: History | None
    parity: float
    seconds: float
    refused: int
    refused_examples: list[BadRecord]
    cv_table: str = ""
    held_out: str = ""  # which rows the metrics are on, in words (cli_support.run says)
    notes: list[str] = field(default_factory=list)


def encode_inputs(recipe: Recipe, inputs: list[object]) -> npt.NDArray[Any]:
    schema = recipe.input_schema()
    if isinstance(schema, SequenceSchema):
        return encode_batch([str(s) for s in inputs], schema)
    if isinstance(schema, TabularSchema):
        return rows_to_array([validate_row(row, schema) for row in inputs])
    if not inputs:
        return np.zeros((0, schema.channels, schema.height, schema.width), dtype=np.float32)
    images = [image for image in inputs if isinstance(image, bytes)]
    if len(images) != len(inputs):
        raise TrainingError("image training inputs must be file bytes.")
    return np.stack([decode_image(image, schema) for image in images])


def _history_writer(
    work_dir: Path | None, then: Callable[[History], None] | None = None
) -> Callable[[History], None] | None:
    """Write ``history.json`` into ``work_dir`` after every epoch, then call ``then``."""
    if work_dir is None:
        return then
    work_dir.mkdir(parents=True, exist_ok=True)

    def write(history: History) -> None:
        (work_dir / "history.json").write_text(json.dumps(history.to_json()))
        if then is not None:
            then(history)

    return write


def target_task(recipe: Recipe, data: Dataset) -> Task:
    """What the targets ask for: regression (the recipe's), multi-label (several label
    columns), binary (two classes) or multi-class."""
    if recipe.task == "regression":
        return "regression"
    if data.label_columns is not None:
        return "multilabel"
    return "binary" if len(set(data.targets)) == 2 else "multiclass"


def _evaluate(
    recipe: Recipe, x: npt.NDArray[Any], y: npt.NDArray[Any], labels: list[str] | None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    predicted = recipe.predict_proba(x)
    if labels is None:
        metrics = regression_metrics(y.astype(np.float64), predicted)
        return metrics, plots.regression_plots(y.astype(np.float64), predicted)
    if y.ndim == 2:
        return multilabel_metrics(y, predicted, labels), {}
    metrics = classification_metrics(y, predicted, labels)
    files = plots.confusion(metrics["confusion_matrix"], labels)
    if len(labels) == 2 and "roc_auc" in metrics:
        files |= plots.roc(y, predicted[:, 1], metrics["roc_auc"])
    return metrics, files


def _expected_onnx(
    native: npt.NDArray[np.float64], exported: npt.NDArray[Any]
) -> npt.NDArray[np.float64]:
    """``native`` in the layout of the exported output: a binary graph may give P(positive)."""
    if exported.ndim == 1 and native.ndim == 2 and native.shape[1] == 2:
        return native[:, 1]
    return native


def train_and_publish(
    recipe: Recipe,
    data: Dataset,
    split: Split,
    store: ModelStore,
    *,
    name: str,
    description: str,
    card_extra: str = "",
    seed: int = 0,
    progress: bool = False,
    work_dir: Path | None = None,
    lineage: Lineage | None = None,
    on_epoch: Callable[[History], None] | None = None,
) -> Outcome:
    """Fit, evaluate, export, check, publish, reload; see the module contract."""
    started = time.perf_counter()
    if not recipe.adapted:
        recipe.adapt(data)
    x = encode_inputs(recipe, data.inputs)
    task = target_task(recipe, data)
    y, labels = encode_targets(data.targets, task, data.positive, data.label_columns)
    classifier = task in ("binary", "multiclass")
    if work_dir is not None:
        recipe.use_work_dir(work_dir)
    fit_rows = split.train if recipe.uses_validation else np.concatenate([split.train, split.val])
    bagged = recipe.learns_from_bags() and data.groups is not None
    if bagged and data.groups is not None:
        recipe.use_bags([data.groups[i] for i in fit_rows], [data.groups[i] for i in split.val])
    history = recipe.fit(
        x[fit_rows],
        y[fit_rows],
        x[split.val],
        y[split.val],
        labels=labels,
        seed=seed,
        progress=progress,
        on_epoch=_history_writer(work_dir, on_epoch),
    )
    with stage(f"scoring the {len(split.test):,} test rows", progress):
        metrics, plot_files = _evaluate(recipe, x[split.test], y[split.test], labels)
        if len(split.external) and labels is not None and classifier:
            external, table = _external(recipe, x, y, labels, data.ids, split.external)
            metrics, card_extra = metrics | external, card_extra + table
        shown = _one_per_class(y, split.test) if classifier else split.test[:0]
        explained, sentence = recipe.explain(x[shown], y[shown], [data.ids[i] for i in shown])
        plot_files |= explained
        card_extra += f"\n## What the model looks at\n\n{sentence}\n" if sentence else ""
        if bagged and data.groups is not None:
            metrics |= isolate_figures(recipe, x, y, data.groups, split)
    with stage("exporting to ONNX and checking it against the trained model", progress):
        model = recipe.export_onnx()
        exported = run_onnx(model, x[split.test], recipe.onnx_output)
        native = _expected_onnx(recipe.predict_proba(x[split.test]), exported)
        parity = check_parity(native, exported, name)
    files = {
        "model.onnx": model,
        **plot_files,
        "metrics.json": _json(metrics),
        "recipe.json": _json(_recipe_record(recipe)),
    }
    weights = recipe.weights()
    if weights is not None:
        files["weights.npz"] = weights
    if history is not None:
        files |= {"history.json": _json(history.to_json())}
        files |= plots.loss_curves(history.train_loss, history.val_loss, history.best_epoch)
    manifest = _manifest(recipe, name, description, labels, metrics, data, files, card_extra)
    files["card.md"] = _card(recipe, manifest, metrics, data, split, card_extra).encode()
    fields = manifest.model_dump(exclude={"files", "version"})
    fields["lineage"] = lineage or Lineage(how="trained")
    fields["headline"] = choose_headline(manifest.task, manifest.metrics, split, bagged)
    manifest = make_manifest(files, **fields)
    examples = [data.inputs[i] for i in _example_rows(y, split.test, classifier)]
    files[EXAMPLES_FILE] = _check_served(
        manifest, files, [data.inputs[i] for i in split.test[:256]], native[:256], examples
    )
    manifest = make_manifest(files, **fields)
    published = store.publish(manifest, files)
    return Outcome(
        published,
        metrics,
        history,
        parity,
        time.perf_counter() - started,
        len(data.refused),
        data.refused[:5],
        notes=list(recipe.notes),
    )


def choose_headline(
    task: str, metrics: dict[str, float], split: Split, bagged: bool
) -> Headline | None:
    """The figure the model is judged by, and what it means; see the module contract."""
    rows = len(split.test)
    if bagged and "isolate_accuracy" in metrics:
        bags = int(metrics.get("isolates", 0))
        right = int(metrics.get("isolates_correct", 0))
        metric = "isolate_accuracy"
        meaning = (
            f"share of the {bags} test bags (isolates) called right ({right}/{bags}): "
            "positive iff the highest member score >= isolate_threshold"
        )
    elif task == "regression" and "r2" in metrics:
        metric, meaning = "r2", f"R² on the {rows:,} held-out test rows"
    elif task == "multilabel" and "auroc" in metrics:
        scored = sum(1 for key in metrics if key.startswith("auroc:"))
        metric = "auroc"
        meaning = f"mean AUROC of the {scored} labels on the {rows:,} held-out test rows"
    elif "accuracy" in metrics:
        metric, meaning = "accuracy", f"accuracy on the {rows:,} held-out test rows"
    else:
        return None
    if "external_accuracy" in metrics:
        count = len(split.external)
        right = round(metrics["external_accuracy"] * count)
        return Headline(
            metric=metric,
            meaning=meaning,
            ood_metric="external_accuracy",
            ood_meaning=f"accuracy on the {count} external rows, never trained or "
            f"tuned on ({right}/{count})",
        )
    return Headline(metric=metric, meaning=meaning)


def _example_rows(
    y: npt.NDArray[Any], rows: npt.NDArray[np.intp], classifier: bool
) -> npt.NDArray[np.intp]:
    """Up to :data:`EXAMPLES` test rows for the self-test: one of every class first."""
    first = list(_one_per_class(y, rows)) if classifier else []
    rest = [int(i) for i in rows if int(i) not in set(first)]
    return np.array((first + rest)[:EXAMPLES], dtype=np.intp)


def _one_per_class(y: npt.NDArray[Any], rows: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """The first test row of every class present, in class order."""
    first = {int(y[i]): i for i in rows[::-1]}
    return np.array([first[k] for k in sorted(first)], dtype=np.intp)


def _external(
    recipe: Recipe,
    x: npt.NDArray[Any],
    y: npt.NDArray[Any],
    labels: list[str],
    ids: list[str],
    rows: npt.NDArray[np.intp],
) -> tuple[dict[str, float], str]:
    """Accuracy on the external rows (never trained on), and a table of each one's call."""
    probabilities = recipe.predict_proba(x[rows])
    if probabilities.ndim == 1:
        probabilities = np.stack([1.0 - probabilities, probabilities], axis=1)
    called = probabilities.argmax(axis=1)
    lines = [
        f"| {ids[i]} | {labels[int(y[i])]} | {labels[int(c)]} | {p.max():.3f} |"
        for i, c, p in zip(rows, called, probabilities, strict=True)
    ]
    table = (
        "\n## External test set (never trained or tuned on)\n\n| record | true | called "
        "| probability of the call |\n|---|---|---|---|\n" + "\n".join(lines) + "\n"
    )
    accuracy = float(np.mean(called == y[rows]))
    return {"external_accuracy": accuracy, "external_records": float(len(rows))}, table


def isolate_figures(
    recipe: Recipe, x: npt.NDArray[Any], y: npt.NDArray[Any], groups: list[str], split: Split
) -> dict[str, float]:
    """Isolate calls (highest gene probability >= threshold): the threshold is chosen on the
    training and validation bags only, then applied to the test bags."""

    def scored(rows: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.float64], npt.NDArray[Any]]:
        bags = [groups[i] for i in rows]
        names, scores = isolate_scores(recipe.predict_proba(x[rows])[:, 1], bags)
        truth = bag_labels([int(v) for v in y[rows]], bags)
        return scores, np.array([truth[n] for n in names])

    fitted, truth = scored(np.concatenate([split.train, split.val]))
    threshold = choose_threshold(fitted, truth)
    train = isolate_metrics(fitted, truth, threshold)
    return {
        "isolate_threshold": threshold,
        "train_isolate_balanced_accuracy": train["isolate_balanced_accuracy"],
        **isolate_metrics(*scored(split.test), threshold),
    }


def _recipe_record(recipe: Recipe) -> dict[str, object]:
    """``recipe.json``: the recipe, its hyper-parameters and its block stack (if any)."""
    record: dict[str, object] = {"recipe": recipe.name, "params": recipe.get_params()}
    if recipe.blocks is not None:
        record["blocks"] = recipe.blocks
    return record


def _json(value: object) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, default=float).encode()


def _manifest(
    recipe: Recipe,
    name: str,
    description: str,
    labels: list[str] | None,
    metrics: dict[str, Any],
    data: Dataset,
    files: dict[str, bytes],
    card_extra: str,
) -> Manifest:
    placeholder = {**files, "card.md": b""}
    return make_manifest(
        placeholder,
        name=name,
        task=recipe.task,
        description=description,
        input=recipe.input_schema(),
        output=OutputSchema(labels=labels, onnx_output=recipe.onnx_output),
        metrics=scalars(metrics),
        training_data_sha256=data.sha256,
        library_versions={
            "helixserve": __version__,
            "onnxruntime": ort.__version__,
            "scikit-learn": sklearn.__version__,
            "python": platform.python_version(),
            **recipe.library_versions(),
        },
    )


def _card(
    recipe: Recipe,
    manifest: Manifest,
    metrics: dict[str, Any],
    data: Dataset,
    split: Split,
    extra: str,
) -> str:
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(manifest.metrics.items()))
    return (
        f"# {manifest.name}\n\n{manifest.description}\n\n"
        f"## Model\n\n`{recipe.name}` recipe: {recipe.describe()}\n\n"
        f"## Data\n\n{len(data):,} records used ({len(data.refused):,} refused by validation); "
        f"split {len(split.train):,} train / {len(split.val):,} validation / "
        f"{len(split.test):,} test{_val_note(recipe)}. Training data sha256 `{data.sha256}`.\n\n"
        f"{_notes(recipe)}"
        f"## Metrics (test set)\n\nOn the {len(split.test):,} held-out test rows, never trained "
        f"or tuned on.\n\n| metric | value |\n|---|---|\n{rows}\n\n{extra}\n"
    )


def _notes(recipe: Recipe) -> str:
    """The recipe's notes (input rule, warnings, refit) as a card section, if any."""
    if not recipe.notes:
        return ""
    return "## Input and training notes\n\n" + "".join(f"- {n}\n" for n in recipe.notes) + "\n"


def _val_note(recipe: Recipe) -> str:
    if recipe.uses_validation:
        return " (early stopping on the validation rows)"
    return " (no early stopping: the validation rows were trained on too)"


def _check_served(
    manifest: Manifest,
    files: dict[str, bytes],
    raw_inputs: list[object],
    expected: npt.NDArray[np.float64],
    examples: list[object],
) -> bytes:
    """Load the bundle as serving will; check predictions on raw inputs, and a refusal. Returns
    ``examples.json``: the ``examples`` with the outputs this served model gives."""
    with tempfile.TemporaryDirectory(prefix="helixserve-check-") as scratch:
        for relative, data in files.items():
            (Path(scratch) / relative).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / relative).write_bytes(data)
        predictor = Predictor(LocalBundle(Path(scratch), manifest))
        _check_predictor(predictor, manifest, raw_inputs, expected)
        return make_examples(predictor, examples)


def _check_predictor(
    predictor: Predictor,
    manifest: Manifest,
    raw_inputs: list[object],
    expected: npt.NDArray[np.float64],
) -> None:
    label = f"{manifest.name} (before publishing)"
    batch = predictor.predict_batch(raw_inputs)
    if batch.errors:
        raise TrainingError(
            f"{label}: the served model refused a test input: {batch.errors[0].error}"
        )
    decoded = batch.decoded
    served = decoded.values if decoded.values is not None else decoded.probabilities
    if served is None:
        raise TrainingError(f"{label}: the served model returned nothing.")
    if manifest.task == "binary" and served.ndim == 2 and expected.ndim == 1:
        served = served[:, 1]
    check_parity(expected, served, f"{label} (served)")
    refused = predictor.predict([b"\x00not an input\x00"])
    if not isinstance(refused[0], ItemError):
        raise TrainingError(f"{label}: the served model accepted a bad input.")
