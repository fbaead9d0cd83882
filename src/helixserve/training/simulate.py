"""Simulated DNA classification tasks with planted motifs (for tests, benchmarks and demos).

Contract: every generator takes a row count and a seed and returns a :class:`SimulatedTask`:
sequences (upper-case str), the target of each row — one class label (binary and multi-class
tasks) or a tuple of 0/1 values, one per label column (multi-label tasks) — and a one-line
description of the rule that made the labels. Same arguments, same data. Nothing is read from
disk. Motifs are planted as noisy copies of a consensus (each position keeps the consensus base
with probability ``fidelity``, else a random base), so a model has to learn a motif, not a string.

- :func:`positional_binary`: every sequence holds motif A once; class ``1`` iff it starts in a
  fixed window (a promoter box at a set distance), ``0`` elsewhere. A model that forgets where
  the motif sits scores about 50 %.
- :func:`positional_multiclass`: three classes: motif A in the 5' half (``up``), motif A in the
  3' half (``down``), motif B anywhere (``other``).
- :func:`multilabel_motifs`: four label columns, each an independent motif present or not
  (anywhere); the last one counts only inside the first ``window`` nt.
- :func:`variable_length`: lengths from ``short`` to ``long`` nt; class ``1`` iff motif A is
  present, planted anywhere (also past 1,024 nt).
- :func:`with_ambiguity`: binary motif presence on fixed-length sequences in which some rows
  hold runs of ``N`` and single IUPAC codes (R, Y, S, W, K, M, B, D, H, V).

:data:`TASKS` names them (name -> generator with its default sizes) for the benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BASES = np.array(list("ACGT"))
MOTIF_A = "TGACGTCA"
MOTIF_B = "GGGCGGGG"
LABEL_MOTIFS = ("CACGTG", "TTGCGCAA", "CCAATCAG", "TATAAAAG")
IUPAC_CODES = "RYSWKMBDHV"


@dataclass(frozen=True)
class SimulatedTask:
    """Sequences, one target per row, and the rule that made them."""

    sequences: list[str]
    targets: list[str] | list[tuple[int, ...]]
    rule: str
    label_columns: tuple[str, ...] = ()


def _background(rng: np.random.Generator, length: int) -> list[str]:
    return list(BASES[rng.integers(0, 4, length)])


def _plant(rng: np.random.Generator, seq: list[str], motif: str, at: int, fidelity: float) -> None:
    for offset, base in enumerate(motif):
        seq[at + offset] = base if rng.random() < fidelity else str(BASES[rng.integers(0, 4)])


def positional_binary(
    n: int, seed: int, *, length: int = 100, window: tuple[int, int] = (20, 30)
) -> SimulatedTask:
    """See the module contract; ``window``: start positions (0-based, end excluded) of class 1."""
    rng = np.random.default_rng(seed)
    sequences, targets = [], []
    last = length - len(MOTIF_A)
    outside = [p for p in range(last + 1) if not window[0] <= p < window[1]]
    for i in range(n):
        seq = _background(rng, length)
        positive = i % 2 == 1
        at = int(rng.integers(*window)) if positive else int(rng.choice(outside))
        _plant(rng, seq, MOTIF_A, at, 0.9)
        sequences.append("".join(seq))
        targets.append("1" if positive else "0")
    rule = f"1 iff motif {MOTIF_A} starts at {window[0]}..{window[1] - 1} (it is in every row)"
    return SimulatedTask(sequences, targets, rule)


def positional_multiclass(n: int, seed: int, *, length: int = 120) -> SimulatedTask:
    """See the module contract."""
    rng = np.random.default_rng(seed)
    sequences, targets = [], []
    half = length // 2
    for i in range(n):
        seq = _background(rng, length)
        label = ("up", "down", "other")[i % 3]
        if label == "up":
            _plant(rng, seq, MOTIF_A, int(rng.integers(0, half - len(MOTIF_A))), 0.9)
        elif label == "down":
            _plant(rng, seq, MOTIF_A, int(rng.integers(half, length - len(MOTIF_A))), 0.9)
        else:
            _plant(rng, seq, MOTIF_B, int(rng.integers(0, length - len(MOTIF_B))), 0.9)
        sequences.append("".join(seq))
        targets.append(label)
    rule = f"up/down: motif {MOTIF_A} in the 5'/3' half; other: motif {MOTIF_B} anywhere"
    return SimulatedTask(sequences, targets, rule)


def multilabel_motifs(n: int, seed: int, *, length: int = 200, window: int = 50) -> SimulatedTask:
    """See the module contract; ``window``: the first nt where the last label's motif counts."""
    rng = np.random.default_rng(seed)
    sequences: list[str] = []
    targets: list[tuple[int, ...]] = []
    for _ in range(n):
        seq = _background(rng, length)
        labels = []
        for j, motif in enumerate(LABEL_MOTIFS):
            present = bool(rng.random() < 0.35)
            positional = j == len(LABEL_MOTIFS) - 1
            if present and positional:
                _plant(rng, seq, motif, int(rng.integers(0, window - len(motif) + 1)), 0.9)
            elif present:
                _plant(rng, seq, motif, int(rng.integers(0, length - len(motif) + 1)), 0.9)
            elif positional and rng.random() < 0.5:  # the motif, but outside its window
                _plant(rng, seq, motif, int(rng.integers(window, length - len(motif) + 1)), 0.9)
            labels.append(int(present))
        sequences.append("".join(seq))
        targets.append(tuple(labels))
    columns = tuple(f"m{j + 1}" for j in range(len(LABEL_MOTIFS)))
    rule = (
        f"label m<j> iff motif j of {', '.join(LABEL_MOTIFS)} is present; m4 only counts "
        f"within the first {window} nt (it also appears further on in negative rows)"
    )
    return SimulatedTask(sequences, targets, rule, columns)


def variable_length(n: int, seed: int, *, short: int = 100, long: int = 1500) -> SimulatedTask:
    """See the module contract."""
    rng = np.random.default_rng(seed)
    sequences, targets = [], []
    for i in range(n):
        length = int(rng.integers(short, long + 1))
        seq = _background(rng, length)
        positive = i % 2 == 1
        if positive:
            _plant(rng, seq, MOTIF_A, int(rng.integers(0, length - len(MOTIF_A))), 0.9)
        else:  # a decoy: motif B, so "something planted" is not the signal
            _plant(rng, seq, MOTIF_B, int(rng.integers(0, length - len(MOTIF_B))), 0.9)
        sequences.append("".join(seq))
        targets.append("1" if positive else "0")
    rule = f"1 iff motif {MOTIF_A} is present (anywhere in {short}..{long} nt; decoy {MOTIF_B})"
    return SimulatedTask(sequences, targets, rule)


def with_ambiguity(n: int, seed: int, *, length: int = 80, share: float = 0.3) -> SimulatedTask:
    """See the module contract; ``share`` of the rows hold ambiguity codes."""
    rng = np.random.default_rng(seed)
    sequences, targets = [], []
    for i in range(n):
        seq = _background(rng, length)
        positive = i % 2 == 1
        if positive:
            _plant(rng, seq, MOTIF_A, int(rng.integers(0, length - len(MOTIF_A))), 0.9)
        if rng.random() < share:
            start, run = int(rng.integers(0, length - 5)), int(rng.integers(1, 6))
            seq[start : start + run] = ["N"] * run
            for at in rng.integers(0, length, 2):
                seq[int(at)] = str(IUPAC_CODES[int(rng.integers(0, len(IUPAC_CODES)))])
        sequences.append("".join(seq))
        targets.append("1" if positive else "0")
    rule = f"1 iff motif {MOTIF_A} is present; {share:.0%} of rows hold N runs and IUPAC codes"
    return SimulatedTask(sequences, targets, rule)


TASKS: dict[str, Callable[..., SimulatedTask]] = {
    "positional-binary": positional_binary,
    "positional-multiclass": positional_multiclass,
    "multilabel": multilabel_motifs,
    "variable-length": variable_length,
    "ambiguity-codes": with_ambiguity,
}
