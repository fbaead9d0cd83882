"""A real multi-label DNA bundle built without torch, and the answers it must give.

The model (:func:`~tests.support.onnx_models.dna_multilabel_model`) reads one-hot DNA (exactly
:data:`LENGTH` nt, or any length from 10 to 40 with ``variable``); label ``enhancer`` counts A,
``promoter`` C and ``insulator`` G: P(label) = sigmoid(0.5 * count - 5), so 10 of a base give
exactly 0.5 (at the threshold: the label is on), more give more. :func:`expected` runs the same
ONNX file through bare ONNX Runtime: the figures every edge must serve.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from helixserve.inputs.sequence import SequenceSchema
from helixserve.store import ModelStore, OutputSchema, make_manifest
from helixserve.store.manifest import Headline
from tests.support.onnx_models import dna_multilabel_model

LABELS = ["enhancer", "promoter", "insulator"]
LENGTH = 20
NAME = "dnafam"
# all A: enhancer only; half A half C: both at exactly 0.5; all G: insulator; all T: none
SEQUENCES = ["A" * 20, "A" * 10 + "C" * 10, "G" * 20, "T" * 20]
LABEL_SETS = [["enhancer"], ["enhancer", "promoter"], ["insulator"], []]
METRICS = {
    "auroc": 0.9,
    "auprc": 0.8,
    "auroc:enhancer": 0.95,
    "auroc:promoter": 0.9,
    "auroc:insulator": 0.85,
    "auprc:enhancer": 0.85,
    "auprc:promoter": 0.8,
    "auprc:insulator": 0.75,
    "loss": 0.25,
}
CARD = "# dnafam\n\nWhich regulatory elements a 20-nt sequence is (test model).\n"


def model_bytes(labels: int = len(LABELS), *, variable: bool = False) -> bytes:
    """The ONNX model (``labels`` outputs; the first three as in the module docstring)."""
    weights = np.zeros((4, labels), dtype=np.float32)
    for label in range(labels):
        weights[label % 4, label] = 0.5
    length: int | str = "L" if variable else LENGTH
    return dna_multilabel_model(weights, np.full(labels, -5.0), length)


def publish_multilabel(
    store: ModelStore, name: str = NAME, *, threshold: float = 0.5, variable: bool = False
) -> int:
    """Publish the multi-label test model; returns its version."""
    files = {"model.onnx": model_bytes(variable=variable), "card.md": CARD.encode()}
    schema = (
        SequenceSchema(min_length=10, max_length=40) if variable else SequenceSchema(length=LENGTH)
    )
    manifest = make_manifest(
        files,
        name=name,
        task="multilabel",
        description="Which regulatory elements a 20-nt sequence is.",
        input=schema,
        output=OutputSchema(labels=LABELS, threshold=threshold),
        metrics=METRICS,
        headline=Headline(metric="auroc", meaning="macro AUROC over the 3 labels, test set"),
    )
    return store.publish(manifest, files).version


def onehot(sequence: str) -> np.ndarray:
    """One-hot (1, 4, len) float32, rows A, C, G, T."""
    out = np.zeros((1, 4, len(sequence)), dtype=np.float32)
    for i, base in enumerate(sequence):
        out[0, "ACGT".index(base), i] = 1.0
    return out


def expected(sequences: list[str]) -> np.ndarray:
    """The probabilities (N, K) the bare ONNX Runtime call gives, one sequence at a time, as
    float64 (the way the runtime widens them)."""
    session = ort.InferenceSession(model_bytes(variable=True), providers=["CPUExecutionProvider"])
    rows = [session.run(["p"], {"input": onehot(s)})[0][0] for s in sequences]
    return np.asarray(rows, dtype=np.float64)
