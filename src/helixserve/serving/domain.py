"""The domain API's logic (``/api/v1``), independent of the web framework.

Contract:
- :func:`predict_json` takes the ``inputs`` of ``POST /api/v1/models/{name}/predict`` (the
  :class:`~helixserve.serving.schemas.PredictRequest` contract: DNA as strings, tabular rows as
  objects, images as base64 strings) and answers
  ``{"model", "version", "predictions", "errors"}``: one entry per input, in order —
  ``{"label", "probability", "probabilities"}`` for classifiers, ``{"labels",
  "probabilities"}`` for multilabel models (the labels at or above the threshold, in label order,
  and every label's probability), ``{"value"}`` for regression, ``null`` for an input that
  failed, which is then listed in ``errors`` with its index, field, position and message. If
  every input fails the answer is a 422 problem with the same list.
- :func:`seed_dna_class` is the seed article's route: the ``dnasequence`` in, the class as plain
  text out (a multilabel model's labels joined by ``;``), or the validation message as plain text
  with status 422 (:func:`refused_as_text`: a body that breaks the contract, as plain text with
  its status).
- :func:`model_list` / :func:`model_detail` describe what is served (manifest, versions, aliases,
  card), each version with its headline from :func:`~helixserve.store.manifest.headline_of` (the
  same figure the web pages and ``helixserve models list`` show). The detail of
  ``?version=N`` describes version N (task, metrics, headline), not the default version.
- Every function raises typed :mod:`helixserve.errors` exceptions; the app turns them into
  problem+json (:mod:`helixserve.serving.problems`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable
from typing import Any

from helixserve.error_table import TABLE, status_of
from helixserve.errors import InputError, InvalidImage, RequestError
from helixserve.inputs.images import ImageSchema
from helixserve.runtime.predictor import BatchPrediction, ItemError
from helixserve.serving.problems import Reply, item_errors, json_reply, problem_from
from helixserve.serving.registry import LoadedModel, Registry
from helixserve.store.manifest import LABEL_SEPARATOR, Manifest, headline_of

TEXT = b"text/plain; charset=utf-8"


def decode_images(items: list[object]) -> tuple[list[object], list[ItemError]]:
    """Turn base64 strings into bytes; an item that is not base64 becomes an item error."""
    decoded: list[object] = []
    errors: list[ItemError] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            errors.append(
                ItemError(
                    i,
                    InvalidImage(
                        f"an image must be a base64 string, got {type(item).__name__}.",
                        field="image",
                    ),
                )
            )
            decoded.append(b"")
            continue
        try:
            decoded.append(base64.b64decode(item.split(",", 1)[-1], validate=True))
        except (binascii.Error, ValueError):
            errors.append(
                ItemError(
                    i,
                    InvalidImage(
                        "an image must be base64-encoded file bytes (PNG, JPEG or TIFF); this "
                        "one is not valid base64.",
                        field="image",
                    ),
                )
            )
            decoded.append(b"")
    return decoded, errors


async def predict_json(model: LoadedModel, items: list[object]) -> Reply:
    """``POST /api/v1/models/{name}/predict``; see the module contract."""
    early: list[ItemError] = []
    if isinstance(model.manifest.input, ImageSchema):
        items, early = decode_images(items)
    if not early:  # the common case: every item goes to the model
        result = await model.batcher.submit(items)
        return _answer(model, prediction_list(result), list(result.errors))
    bad = {e.index for e in early}
    result = await model.batcher.submit([it for i, it in enumerate(items) if i not in bad])
    predictions, errors = _reinsert(
        len(items), bad, prediction_list(result), list(result.errors), early
    )
    return _answer(model, predictions, errors)


def _answer(model: LoadedModel, predictions: list[Any], errors: list[ItemError]) -> Reply:
    listed = item_errors(errors) if errors else []
    if len(errors) == len(predictions):
        detail = (
            listed[0]["message"]
            if len(errors) == 1
            else (f"none of the {len(errors)} inputs is valid; see errors.")
        )
        reply = problem_from(TABLE[InputError], detail, errors=listed)
    else:
        reply = json_reply(
            {
                "model": model.name,
                "version": model.version,
                "predictions": predictions,
                "errors": listed,
            }
        )
    reply.failures = len(errors)
    return reply


def _reinsert(
    size: int,
    bad: set[int],
    predictions: list[Any],
    errors: list[ItemError],
    early: list[ItemError],
) -> tuple[list[Any], list[ItemError]]:
    """Map results of the good subset back to the full request's indices."""
    good = [i for i in range(size) if i not in bad]
    full: list[Any] = [None] * size
    for position, prediction in zip(good, predictions, strict=True):
        full[position] = prediction
    moved = [ItemError(good[e.index], e.error) for e in errors]
    return full, sorted(moved + early, key=lambda e: e.index)


def prediction_list(result: BatchPrediction) -> list[dict[str, Any] | None]:
    """One JSON-ready dict per input (``None`` where the input failed)."""
    out: list[dict[str, Any] | None] = [None] * result.size
    decoded, positions = result.decoded, result.positions.tolist()
    if decoded.values is not None:
        for p, value in zip(positions, decoded.values.tolist(), strict=True):
            out[p] = {"value": value}
        return out
    names = result.label_names or []
    if decoded.positive is not None and decoded.probabilities is not None:
        rows, sets = decoded.probabilities.tolist(), result.label_sets()
        for p, row, labels in zip(positions, rows, sets, strict=True):
            out[p] = {"labels": labels, "probabilities": dict(zip(names, row, strict=True))}
        return out
    if decoded.probabilities is None or decoded.label_index is None:
        return out
    rows, chosen = decoded.probabilities.tolist(), decoded.label_index.tolist()
    for p, row, c in zip(positions, rows, chosen, strict=True):
        out[p] = {
            "label": names[c],
            "probability": row[c],
            "probabilities": dict(zip(names, row, strict=True)),
        }
    return out


# --- the seed article's route --------------------------------------------------------------------


async def seed_dna_class(model: LoadedModel, sequence: object) -> Reply:
    """``POST /api/v1/getdnaclassapi``: plain-text class or plain-text validation message."""
    result = await model.batcher.submit([sequence])
    if result.errors:
        text = str(result.errors[0].error).encode()
        return Reply(TABLE[InputError].status, text, TEXT, failures=1)
    labels = result.labels()
    if result.decoded.positive is not None:
        answer = LABEL_SEPARATOR.join(result.label_sets()[0])
    else:
        answer = labels[0] if labels else f"{result.decoded.values[0]:.6g}"  # type: ignore[index]
    return Reply(200, answer.encode(), TEXT)


def refused_as_text(err: RequestError) -> Reply:
    """The seed route's answer to a body that breaks its contract: the message as plain text."""
    return Reply(status_of(err), str(err).encode(), TEXT)


# --- describing models ----------------------------------------------------------------------


def headline_json(manifest: Manifest) -> dict[str, Any]:
    """:func:`~helixserve.store.manifest.headline_of` as the API answers it (``HeadlineOut``)."""
    figure = headline_of(manifest)
    return {**dataclasses.asdict(figure), "text": figure.text, "ood_text": figure.ood_text}


def _described(manifest: Manifest) -> dict[str, Any]:
    return {
        "task": manifest.task,
        "description": manifest.description,
        "input_kind": manifest.input.kind,
        "labels": manifest.output.labels,
        "metrics": manifest.metrics,
        "headline": headline_json(manifest),
    }


def model_summary(registry: Registry, name: str) -> dict[str, Any]:
    """A model at its default version, with every served version and alias."""
    entry = registry.entry(name)
    default = entry.versions[entry.default].manifest
    return {
        "name": name,
        "default_version": entry.default,
        **_described(default),
        "versions": sorted(entry.versions),
        "aliases": dict(sorted(entry.aliases.items())),
    }


def model_list(registry: Registry, shown: Callable[[str], bool] = lambda _: True) -> Reply:
    """Every served model that ``shown`` lets the caller see."""
    names = [n for n in registry.names() if shown(n)]
    return json_reply({"models": [model_summary(registry, n) for n in names]})


def model_detail(registry: Registry, name: str, version: str | None) -> Reply:
    """One version: its task, metrics and headline (not the default version's), its manifest and
    card, beside the model's versions and aliases."""
    model = registry.resolve(name, version)
    manifest = model.manifest.model_dump(mode="json")
    card_path = model.predictor.bundle_path / "card.md"
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
    summary = {**model_summary(registry, name), **_described(model.manifest)}
    return json_reply({**summary, "version": model.version, "manifest": manifest, "card": card})
