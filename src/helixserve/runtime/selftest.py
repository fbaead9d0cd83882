"""Self-tests of a bundle (like ``kipoi test``): example inputs with the outputs the model gave.

Contract:
- ``examples.json`` (one of the bundle's files, so it is covered by the manifest's sha256) holds
  ``{"format": 1, "tolerance": T, "examples": [{"input": ..., "output": [...]}, ...]}``. An input
  is a DNA string, a tabular row (an object of feature name -> value) or, for images,
  ``{"image_base64": "..."}``; an output is the served numbers: the value (regression) or the
  probability of each label in label order (classifiers, multilabel models too).
- :func:`make_examples` runs the given raw inputs through a loaded
  :class:`~helixserve.runtime.predictor.Predictor` and returns the file's bytes; an input the
  model refuses raises :class:`~helixserve.errors.SelfTestError` (examples must be valid).
- A stored file is checked before anything runs: at most :data:`MAX_BYTES`, ``format`` 1,
  1 to :data:`MAX_EXAMPLES` examples, each an object with an ``input`` (a string, an object, or
  ``{"image_base64": ...}`` that decodes) and an ``output`` (a non-empty list of finite numbers),
  and a finite tolerance from 0 to :data:`MAX_TOLERANCE`; anything else raises
  :class:`SelfTestError` naming what is wrong (a damaged file never escapes as another error).
- :func:`run_selftest` re-runs a bundle's examples and returns a :class:`SelfTestReport`
  (``passed`` is false when any output differs by more than ``T`` absolute + ``T`` relative, or
  an example is refused); :func:`check_selftest` raises :class:`SelfTestError` with the first
  differences. A bundle without ``examples.json`` reports ``checked == 0`` and passes (older
  bundles and imports without examples), :attr:`SelfTestReport.has_examples` says so.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helixserve.errors import SelfTestError
from helixserve.runtime.predictor import Predictor

EXAMPLES_FILE = "examples.json"
TOLERANCE = 1e-4
MAX_TOLERANCE = 1e-2
MAX_EXAMPLES = 64
MAX_BYTES = 4 * 1024 * 1024
SHOWN = 5


@dataclass(frozen=True)
class Mismatch:
    """One example whose output differs: its 0-based number, what was stored and what came."""

    index: int
    expected: list[float]
    got: list[float] | None
    reason: str = ""

    def describe(self) -> str:
        """``example 3: expected [0.12, 0.88], got [0.5, 0.5] (max difference 0.38)``."""
        if self.got is None:
            return f"example {self.index}: expected {_fmt(self.expected)}, refused: {self.reason}"
        if len(self.got) != len(self.expected):
            return (
                f"example {self.index}: expected {len(self.expected)} numbers "
                f"{_fmt(self.expected)}, got {len(self.got)}: {_fmt(self.got)}"
            )
        diff = float(np.max(np.abs(np.array(self.expected) - np.array(self.got))))
        return (
            f"example {self.index}: expected {_fmt(self.expected)}, got {_fmt(self.got)} "
            f"(max difference {diff:.3g})"
        )


@dataclass(frozen=True)
class SelfTestReport:
    """The outcome of re-running a bundle's examples."""

    label: str
    checked: int
    tolerance: float
    mismatches: list[Mismatch] = field(default_factory=list)
    has_examples: bool = True

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        """One line for people; the first differences when it failed."""
        if not self.has_examples:
            return f"{self.label}: no self-test examples in this bundle (nothing to check)"
        if self.passed:
            return f"{self.label}: {self.checked} examples match (tolerance {self.tolerance:g})"
        shown = "; ".join(m.describe() for m in self.mismatches[:SHOWN])
        more = len(self.mismatches) - SHOWN
        return (
            f"{self.label}: {len(self.mismatches)} of {self.checked} examples differ from the "
            f"outputs stored at publish time: {shown}" + (f"; and {more} more" if more > 0 else "")
        )


def make_examples(
    predictor: Predictor, inputs: Sequence[object], tolerance: float = TOLERANCE
) -> bytes:
    """The bytes of ``examples.json`` for ``inputs``, with the outputs ``predictor`` gives."""
    outputs = _outputs(predictor, inputs)
    refused = [i for i, out in enumerate(outputs) if isinstance(out, str)]
    if refused:
        raise SelfTestError(
            f"{predictor.label}: self-test example {refused[0]} is refused by the model "
            f"({outputs[refused[0]]}); choose valid inputs."
        )
    pairs = zip(inputs, outputs, strict=True)
    examples = [{"input": _to_json(item), "output": out} for item, out in pairs]
    body = {"format": 1, "tolerance": tolerance, "examples": examples}
    return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def run_selftest(predictor: Predictor) -> SelfTestReport:
    """Re-run the examples stored in the predictor's bundle; see the module contract."""
    path = predictor.bundle_path / EXAMPLES_FILE
    if EXAMPLES_FILE not in predictor.manifest.files or not path.is_file():
        return SelfTestReport(predictor.label, 0, TOLERANCE, has_examples=False)
    if path.stat().st_size > MAX_BYTES:
        raise SelfTestError(
            f"{EXAMPLES_FILE} of {predictor.label} is over {MAX_BYTES // 2**20} MiB; a self-test "
            f"holds at most {MAX_EXAMPLES} examples. Publish the model again."
        )
    stored = _read(path.read_bytes(), predictor.label)
    tolerance = float(stored["tolerance"])
    inputs = [_from_json(example["input"]) for example in stored["examples"]]
    outputs = _outputs(predictor, inputs)
    mismatches = []
    for index, (example, got) in enumerate(zip(stored["examples"], outputs, strict=True)):
        expected = [float(v) for v in example["output"]]
        if isinstance(got, str):
            mismatches.append(Mismatch(index, expected, None, got))
        elif len(got) != len(expected) or not np.allclose(
            got, expected, atol=tolerance, rtol=tolerance
        ):
            mismatches.append(Mismatch(index, expected, got))
    return SelfTestReport(predictor.label, len(inputs), tolerance, mismatches)


def check_selftest(predictor: Predictor) -> SelfTestReport:
    """:func:`run_selftest`, raising :class:`SelfTestError` when it fails."""
    report = run_selftest(predictor)
    if not report.passed:
        raise SelfTestError(report.summary())
    return report


def stored_inputs(data: bytes, label: str) -> list[object]:
    """The raw inputs of ``examples.json`` bytes (checked; :class:`SelfTestError` if damaged)."""
    return [_from_json(example["input"]) for example in _read(data, label)["examples"]]


def _outputs(predictor: Predictor, inputs: Sequence[object]) -> list[list[float] | str]:
    """Per input: the served numbers, or the refusal message."""
    batch = predictor.predict_batch(list(inputs))
    result: list[list[float] | str] = ["" for _ in inputs]
    for error in batch.errors:
        result[error.index] = str(error.error)
    decoded = batch.decoded
    numbers = decoded.values if decoded.values is not None else decoded.probabilities
    if numbers is not None:
        for position, row in zip(batch.positions.tolist(), numbers.tolist(), strict=True):
            result[position] = [float(v) for v in (row if isinstance(row, list) else [row])]
    return result


def _read(data: bytes, label: str) -> dict[str, Any]:
    """The parsed file, checked; see the module contract."""
    try:
        stored = json.loads(data)
        _check_stored(stored)
    except (ValueError, TypeError, KeyError, RecursionError) as err:
        raise SelfTestError(
            f"{EXAMPLES_FILE} of {label} is damaged ({str(err)[:200]}); publish the model again."
        ) from None
    return dict(stored)


def _check_stored(stored: object) -> None:
    if not isinstance(stored, dict) or stored.get("format") != 1:
        raise ValueError("it must be an object with format 1")
    tolerance = stored.get("tolerance")
    if not isinstance(tolerance, int | float) or isinstance(tolerance, bool):
        raise ValueError("tolerance must be a number")
    if not 0 <= tolerance <= MAX_TOLERANCE:  # NaN fails this too
        raise ValueError(f"tolerance must be from 0 to {MAX_TOLERANCE:g}, got {tolerance!r}")
    examples = stored.get("examples")
    if not isinstance(examples, list) or not 1 <= len(examples) <= MAX_EXAMPLES:
        raise ValueError(f"examples must be a list of 1 to {MAX_EXAMPLES}")
    for index, example in enumerate(examples):
        if not isinstance(example, dict) or set(example) != {"input", "output"}:
            raise ValueError(f"example {index} must hold exactly an input and an output")
        output = example["output"]
        if not isinstance(output, list) or not output or not all(_finite(v) for v in output):
            raise ValueError(f"the output of example {index} must be a list of finite numbers")
        _from_json(example["input"])  # a base64 image that does not decode raises here


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and bool(np.isfinite(value))
    )


def _to_json(item: object) -> object:
    if isinstance(item, bytes | bytearray):
        return {"image_base64": base64.b64encode(bytes(item)).decode("ascii")}
    return item


def _from_json(item: object) -> object:
    if isinstance(item, dict) and set(item) == {"image_base64"}:
        try:
            return base64.b64decode(str(item["image_base64"]), validate=True)
        except binascii.Error as err:
            raise ValueError(f"an image input is not valid base64 ({err})") from None
    if not isinstance(item, str | dict):
        raise ValueError(f"an input must be a string or an object, got {type(item).__name__}")
    return item


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
