"""Sequence design: greedy rounds of the best single-base change, under constraints.

Contract: :func:`design` starts from ``start`` (validated by the model's schema) and, for up to
``rounds`` rounds, scores every single-base substitution of the current sequence in one batch
(:func:`~helixserve.explain.ism.ism`), drops the ones that break a constraint — ``fixed``
positions (1-based) never change, no ``forbid`` motif (e.g. ``ATG``, an upstream start codon for a
5' UTR) may occur more often than in the start sequence (so a start that already holds one ATG
gets no second one), the GC fraction stays in ``gc`` — and keeps
the best one for the ``goal``: ``max`` or ``min`` the score, or ``target=X`` (closest to X). It
stops early when no allowed change improves the goal. The result is the trajectory: one
:class:`Step` per round (sequence, score, the change made) starting with round 0 = ``start``.
Bad constraints raise :class:`~helixserve.errors.InputError` saying which and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from helixserve.errors import InputError
from helixserve.explain.ism import BASES, ism
from helixserve.runtime.predictor import Predictor


@dataclass(frozen=True)
class Step:
    round: int
    sequence: str
    score: float
    change: str | None  # e.g. "A12G"


@dataclass(frozen=True)
class Goal:
    kind: str  # max | min | target
    value: float = 0.0

    @staticmethod
    def parse(text: str) -> Goal:
        if text in ("max", "min"):
            return Goal(text)
        if text.startswith("target="):
            try:
                return Goal("target", float(text.removeprefix("target=")))
            except ValueError:
                pass
        raise InputError(f"goal must be max, min or target=<number>, got {text!r}.", field="goal")

    def better(self, new: float, old: float) -> bool:
        if self.kind == "max":
            return new > old
        if self.kind == "min":
            return new < old
        return abs(new - self.value) < abs(old - self.value)


def _gc(sequence: str) -> float:
    return sum(c in "GC" for c in sequence) / max(len(sequence), 1)


def _occurrences(sequence: str, motif: str) -> int:
    """How often ``motif`` occurs in ``sequence``, overlaps included."""
    return sum(sequence.startswith(motif, i) for i in range(len(sequence) - len(motif) + 1))


def _allowed(candidate: str, start: str, forbid: Sequence[str], gc: tuple[float, float]) -> bool:
    if any(_occurrences(candidate, m) > _occurrences(start, m) for m in forbid):
        return False
    return gc[0] <= _gc(candidate) <= gc[1]


def _check(
    start: str, fixed: Sequence[int], forbid: Sequence[str], gc: tuple[float, float], rounds: int
) -> None:
    if not 1 <= rounds <= 500:
        raise InputError(f"rounds must be from 1 to 500, got {rounds}.", field="rounds")
    outside = [p for p in fixed if not 1 <= p <= len(start)]
    if outside:
        raise InputError(
            f"fixed position {outside[0]} is outside the sequence (1 to {len(start)}).",
            field="fixed",
        )
    bad = [m for m in forbid if not m or set(m.upper()) - set(BASES)]
    if bad:
        raise InputError(f"forbidden motif {bad[0]!r} must be letters A, C, G, T.", field="forbid")
    if not 0 <= gc[0] <= gc[1] <= 1:
        raise InputError(
            f"gc range must be two fractions low <= high within 0..1, got {list(gc)}.", field="gc"
        )
    if not gc[0] <= _gc(start) <= gc[1]:
        raise InputError(
            f"the start sequence's GC fraction {_gc(start):.2f} is outside the gc "
            f"range {list(gc)}; widen the range or change the start.",
            field="gc",
        )


def design(
    predictor: Predictor,
    start: str,
    *,
    goal: str = "max",
    rounds: int = 10,
    fixed: Sequence[int] = (),
    forbid: Sequence[str] = (),
    gc: tuple[float, float] = (0.0, 1.0),
    target: str | None = None,
) -> list[Step]:
    """The design trajectory; see the module contract."""
    wanted = Goal.parse(goal)
    first = ism(predictor, start, target)
    sequence, forbid = first.sequence, [m.upper() for m in forbid]
    _check(sequence, fixed, forbid, gc, rounds)
    frozen = {p - 1 for p in fixed}
    steps = [Step(0, sequence, first.score, None)]
    result = first
    for number in range(1, rounds + 1):
        best: tuple[float, int, int] | None = None
        for i, row in enumerate(result.effects):
            if i in frozen or sequence[i] not in BASES:
                continue
            for b, effect in enumerate(row):
                if BASES[b] == sequence[i]:
                    continue
                score = result.score + effect
                candidate = sequence[:i] + BASES[b] + sequence[i + 1 :]
                if (best is None or wanted.better(score, best[0])) and _allowed(
                    candidate, start.upper(), forbid, gc
                ):
                    best = (score, i, b)
        if best is None or not wanted.better(best[0], result.score):
            break
        _, i, b = best
        change = f"{sequence[i]}{i + 1}{BASES[b]}"
        sequence = sequence[:i] + BASES[b] + sequence[i + 1 :]
        result = ism(predictor, sequence, result.target)
        steps.append(Step(number, sequence, result.score, change))
    return steps
