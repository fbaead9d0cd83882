"""Motifs a DNA model has learned: from ISM maps over many sequences, and from its first layer.

Contract:
- :func:`top_windows` takes ISM results and returns, per sequence, the ``width``-nt window with
  the largest summed importance (ties: the leftmost).
- :func:`cluster_windows` groups windows greedily: the most frequent remaining window seeds a
  group, and every remaining window within ``max_mismatches`` of it at a shift of at most
  ``max_shift`` joins it, aligned to the seed. :func:`frequencies` turns aligned windows into a
  position frequency matrix (``width x 4``, columns A C G T, a pseudocount of 0.1 per base; a
  shifted window counts only where it overlaps).
- A :class:`Motif` holds that matrix, its consensus (the most frequent base; ``N`` where the
  column holds under 0.5 bits), its information content in bits and its support (the number of
  windows); :func:`ism_motifs` runs the whole path (ISM, windows, groups) and returns the
  ``top`` best-supported motifs; :func:`motifs_from` does the same from ISM results already
  computed (a caller that reports progress computes them itself).
- :func:`filter_motifs` reads the first convolution with learned weights from a bundle's ONNX
  graph (weights ``filters x 4 x width``) and turns each filter into a frequency matrix
  (softmax of each column's weights, scaled so the filter's largest weight is ``sharpness``),
  strongest filters (L2 norm) first. It needs the ``onnx`` package (the ``train`` extra);
  without it, or for a graph with no such convolution, a HelixError says so.
- :func:`jaspar_matches` compares a frequency matrix with every matrix of a JASPAR collection
  (PyPI ``pyjaspar``, which ships the database: nothing is downloaded), on both strands and every
  offset that overlaps by at least ``min_overlap`` columns. The score is the Pearson correlation
  of the overlapping columns times the overlap's share of the longer matrix, so a matrix matched
  against itself scores 1. Without pyjaspar it raises :class:`~helixserve.errors.HelixError`
  with the install command; motif extraction itself does not need it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from helixserve.errors import HelixError
from helixserve.explain.ism import BASES, IsmResult, ism
from helixserve.runtime.predictor import Predictor

PSEUDOCOUNT = 0.1
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class JasparMatch:
    matrix_id: str
    name: str
    score: float
    offset: int  # where the JASPAR matrix starts relative to the motif (negative: before it)
    strand: str  # "+" or "-" (the JASPAR matrix reverse-complemented)


@dataclass
class Motif:
    source: str
    frequencies: Matrix
    support: int
    matches: list[JasparMatch] = field(default_factory=list)

    @property
    def bits(self) -> Matrix:
        """Information content of each column (0 to 2 bits)."""
        p = self.frequencies
        return np.asarray(2 + (p * np.log2(p)).sum(axis=1), dtype=np.float64)

    @property
    def information(self) -> float:
        return float(self.bits.sum())

    @property
    def consensus(self) -> str:
        letters = [BASES[int(i)] for i in self.frequencies.argmax(axis=1)]
        return "".join(
            b if bits >= 0.5 else "N" for b, bits in zip(letters, self.bits, strict=True)
        )


def top_windows(results: Sequence[IsmResult], width: int) -> list[str]:
    """The most important ``width``-nt window of each sequence (see the module contract)."""
    windows = []
    for result in results:
        if len(result.sequence) < width:
            continue
        sums = np.convolve(np.asarray(result.importance, dtype=np.float64), np.ones(width), "valid")
        start = int(np.argmax(sums))
        windows.append(result.sequence[start : start + width])
    return windows


def _distance(seed: str, window: str, shift: int) -> int:
    """Mismatches of ``window`` placed at ``shift`` against ``seed`` (overhangs count as such)."""
    overlap = [
        (seed[i], window[i - shift]) for i in range(len(seed)) if 0 <= i - shift < len(window)
    ]
    return sum(a != b for a, b in overlap) + abs(shift)


def cluster_windows(
    windows: Sequence[str], max_mismatches: int = 3, max_shift: int = 2
) -> list[tuple[str, list[tuple[str, int]]]]:
    """Groups of (window, shift) aligned to a seed, largest first; see the module contract."""
    left = Counter(windows)
    groups = []
    while left:
        seed = left.most_common(1)[0][0]
        members: list[tuple[str, int]] = []
        for window, count in list(left.items()):
            best = min(range(-max_shift, max_shift + 1), key=lambda s: _distance(seed, window, s))
            if _distance(seed, window, best) <= max_mismatches:
                members += [(window, best)] * count
                del left[window]
        groups.append((seed, members))
    return sorted(groups, key=lambda g: -len(g[1]))


def frequencies(aligned: Sequence[tuple[str, int]], width: int) -> Matrix:
    """Position frequency matrix of aligned windows (see the module contract)."""
    counts = np.full((width, 4), PSEUDOCOUNT)
    for window, shift in aligned:
        for i in range(width):
            j = i - shift
            if 0 <= j < len(window) and window[j] in BASES:
                counts[i, BASES.index(window[j])] += 1
    return np.asarray(counts / counts.sum(axis=1, keepdims=True), dtype=np.float64)


def ism_motifs(
    predictor: Predictor,
    sequences: Sequence[str],
    *,
    width: int = 12,
    top: int = 3,
    target: str | None = None,
    max_mismatches: int = 3,
) -> list[Motif]:
    """Motifs from the most important window of each sequence (see the module contract)."""
    results = [ism(predictor, sequence, target) for sequence in sequences]
    return motifs_from(results, width=width, top=top, max_mismatches=max_mismatches)


def motifs_from(
    results: Sequence[IsmResult], *, width: int = 12, top: int = 3, max_mismatches: int = 3
) -> list[Motif]:
    """The ``top`` best-supported motifs of ISM results already computed (windows, groups)."""
    groups = cluster_windows(top_windows(results, width), max_mismatches=max_mismatches)
    return [Motif("ism", frequencies(members, width), len(members)) for _, members in groups[:top]]


def filter_motifs(model_path: Path, top: int = 10, sharpness: float = 4.0) -> list[Motif]:
    """The strongest first-layer filters of a DNA CNN as motifs (see the module contract)."""
    weights = _first_conv_weights(model_path)
    norms = np.linalg.norm(weights.reshape(len(weights), -1), axis=1)
    motifs = []
    for index in np.argsort(-norms)[:top]:
        scale = float(np.abs(weights[index]).max()) or 1.0
        columns = (
            weights[index].T / scale * sharpness
        )  # width x 4, the strongest weight = sharpness
        columns = np.exp(columns - columns.max(axis=1, keepdims=True))
        motifs.append(
            Motif(f"filter {int(index)}", columns / columns.sum(axis=1, keepdims=True), 0)
        )
    return motifs


def _first_conv_weights(model_path: Path) -> Matrix:
    try:
        import onnx  # noqa: PLC0415 - the train extra
        from onnx import numpy_helper  # noqa: PLC0415
    except ImportError:
        raise HelixError(
            "reading first-layer filters needs the onnx package: pip install 'helixserve[train]'."
        ) from None
    graph = onnx.load(str(model_path)).graph
    weights = {i.name: i for i in graph.initializer}
    for node in graph.node:
        init = (
            weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        )
        if init is None:
            continue
        values = numpy_helper.to_array(init).astype(np.float64)
        if values.ndim == 3 and values.shape[1] == 4 and not np.all(values == np.round(values)):
            return values
    raise HelixError(
        f"{model_path} has no convolution over the 4 bases with learned weights; "
        "first-layer filters are for CNNs on one-hot DNA."
    )


@lru_cache(maxsize=4)
def jaspar_collection(collection: str = "CORE") -> tuple[tuple[str, str, Matrix], ...]:
    """Every matrix of a JASPAR collection as (id, name, frequencies width x 4)."""
    try:
        from pyjaspar import jaspardb  # noqa: PLC0415 - optional dependency (explain extra)
    except ImportError:
        raise HelixError(
            "matching motifs against JASPAR needs pyjaspar: pip install 'helixserve[explain]'."
        ) from None
    found = []
    for motif in jaspardb().fetch_motifs(collection=collection, all_versions=False):
        counts = np.array([list(motif.counts[b]) for b in BASES], dtype=np.float64).T
        counts += PSEUDOCOUNT
        found.append(
            (str(motif.matrix_id), str(motif.name), counts / counts.sum(axis=1, keepdims=True))
        )
    return tuple(found)


def _best_alignment(query: Matrix, other: Matrix, min_overlap: int) -> tuple[float, int]:
    best, where = -1.0, 0
    longer = max(len(query), len(other))
    for offset in range(-(len(other) - min_overlap), len(query) - min_overlap + 1):
        q0, o0 = max(0, offset), max(0, -offset)
        n = min(len(query) - q0, len(other) - o0)
        a = query[q0 : q0 + n].ravel() - 0.25  # every column sums to 1: its mean is 0.25
        b = other[o0 : o0 + n].ravel() - 0.25
        norm = float(np.sqrt((a @ a) * (b @ b)))
        if n < min_overlap or norm == 0:
            continue
        score = float(a @ b) / norm * n / longer
        if score > best:
            best, where = score, offset
    return best, where


def jaspar_matches(
    query: Matrix, top: int = 5, collection: str = "CORE", min_overlap: int = 5
) -> list[JasparMatch]:
    """The ``top`` JASPAR matrices most like ``query`` (see the module contract)."""
    scored = []
    for matrix_id, name, matrix in jaspar_collection(collection):
        for strand, other in (("+", matrix), ("-", matrix[::-1, ::-1])):
            score, offset = _best_alignment(query, other, min(min_overlap, len(query), len(other)))
            scored.append(JasparMatch(matrix_id, name, round(score, 4), offset, strand))
    return sorted(scored, key=lambda m: -m.score)[:top]


def describe(motif: Motif) -> dict[str, Any]:
    """A JSON-ready view of a motif."""
    return {
        "source": motif.source,
        "consensus": motif.consensus,
        "support": motif.support,
        "information_bits": round(motif.information, 3),
        "frequencies": np.round(motif.frequencies, 4).tolist(),
        "jaspar": [m.__dict__ for m in motif.matches],
    }
