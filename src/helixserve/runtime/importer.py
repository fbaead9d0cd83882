"""Importing an external ONNX model: an ONNX file plus a short schema file become a bundle.

Contract:
- :func:`read_schema_file` reads YAML (or JSON, which is YAML) with ``task``, ``input``
  (a ``dna`` / ``tabular`` / ``image`` schema as in the manifest), ``output`` (labels, units,
  threshold, onnx_output) and optionally ``onnx_input``, ``description``, ``metrics``,
  ``card`` (a Markdown file, relative to the schema file). Unknown keys or bad values raise
  :class:`~helixserve.errors.ManifestError` naming the key and the file.
- :func:`import_onnx` checks that ONNX Runtime loads the model and that its signature fits the
  schema (:class:`~helixserve.errors.ModelLoadError` otherwise) *before* anything is published,
  then adds self-test examples (``examples.json``: 8 valid random inputs and the outputs the
  model gave, see :mod:`helixserve.runtime.selftest`) and its lineage (``import`` from the file's
  name and sha256), publishes it to the store as the next version of ``name`` and returns its
  manifest.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path
from typing import Any

import onnxruntime as ort
import yaml

from helixserve import __version__
from helixserve.errors import ManifestError
from helixserve.runtime.predictor import Predictor
from helixserve.runtime.samples import sample_inputs
from helixserve.runtime.selftest import EXAMPLES_FILE, make_examples
from helixserve.store.bundle import make_manifest, sha256_bytes
from helixserve.store.manifest import Lineage, Manifest
from helixserve.store.store import LocalBundle, ModelStore

EXAMPLES = 8
SCHEMA_KEYS = {"task", "input", "output", "onnx_input", "description", "metrics", "card"}


def read_schema_file(path: Path) -> dict[str, Any]:
    """The schema file's fields, checked for unknown keys; see the module contract."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ManifestError(f"cannot read the schema file {path}: {err.strerror}.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ManifestError(f"schema file {path} is not valid YAML: {err}".strip()) from None
    if not isinstance(raw, dict):
        raise ManifestError(f"schema file {path} must hold a mapping (task:, input:, output:).")
    unknown = sorted(set(raw) - SCHEMA_KEYS)
    if unknown:
        raise ManifestError(
            f"schema file {path} has unknown key {', '.join(map(repr, unknown))}; allowed keys "
            f"are {', '.join(sorted(SCHEMA_KEYS))}."
        )
    return raw


def build_bundle(
    onnx_path: Path, schema_path: Path, name: str
) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and files of a bundle made from an ONNX file and a schema file."""
    fields = read_schema_file(schema_path)
    card_file = fields.pop("card", None)
    card = _card(schema_path, card_file, name, fields)
    try:
        model = onnx_path.read_bytes()
    except OSError as err:
        raise ManifestError(f"cannot read the model file {onnx_path}: {err.strerror}.") from None
    files = {"model.onnx": model, "card.md": card.encode("utf-8")}
    try:
        manifest = make_manifest(
            files,
            name=name,
            library_versions={
                "helixserve": __version__,
                "onnxruntime": ort.__version__,
                "python": platform.python_version(),
            },
            **fields,
        )
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise ManifestError(
            f"schema file {schema_path} is not valid: {_first_error(err)}"
        ) from None
    return manifest, files


def _card(schema_path: Path, card_file: object, name: str, fields: dict[str, Any]) -> str:
    if card_file is None:
        about = fields.get("description") or "(no description given)"
        return f"# {name}\n\n{about}\n\nImported from an external ONNX model.\n"
    path = schema_path.parent / str(card_file)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"cannot read the card file {path}: {err}.") from None


def _first_error(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return f"{where}: {first['msg']}."
    return str(err)


def import_onnx(store: ModelStore, onnx_path: Path, schema_path: Path, name: str) -> Manifest:
    """Check, then publish an external ONNX model; see the module contract."""
    manifest, files = build_bundle(onnx_path, schema_path, name)
    with tempfile.TemporaryDirectory(prefix="helixserve-import-") as scratch:
        for relative, data in files.items():
            (Path(scratch) / relative).write_bytes(data)
        predictor = Predictor(LocalBundle(Path(scratch), manifest))  # checks the signature
        examples = make_examples(predictor, sample_inputs(predictor, EXAMPLES))
    files[EXAMPLES_FILE] = examples
    source = f"{onnx_path.name} (sha256 {sha256_bytes(files['model.onnx'])})"
    fields = manifest.model_dump(exclude={"files", "version"})
    fields["lineage"] = Lineage(how="import", source=source)
    return store.publish(make_manifest(files, **fields), files)
