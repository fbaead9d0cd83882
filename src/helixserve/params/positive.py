"""Which class of a binary target is the positive one: named, or obvious, never alphabetical.

Contract: :func:`binary_classes` takes the two classes of a binary target (as the targets spell
them, after any renaming) and the class the user named positive (``None``: not named), and
returns ``[negative, positive]``, the order of a binary model's output labels (its probability
is that of the positive class).

- A named class must be one of the two, spelled exactly; otherwise
  :class:`~helixserve.errors.HelixError` names both classes.
- Not named: a well-known pair decides (:data:`CONVENTIONAL`, compared without case and outer
  spaces: ``false``/``true``, ``no``/``yes``, ``negative``/``positive``, ``-``/``+``,
  ``benign``/``malignant`` ...), and so do two numbers that are 0 and 1 or -1 and 1 (the 1).
  Any other pair raises :class:`~helixserve.errors.HelixError` naming the two classes and how
  to choose (``how``: a template such as ``--positive {}``, filled with a class, quoted for a
  shell); the classes are never put in alphabetical order.

Plain Python (no numpy): the training layer, the CLI and the workspace use it alike.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Collection

from helixserve.errors import HelixError

# (negative, positive), lower case
CONVENTIONAL: tuple[tuple[str, str], ...] = (
    ("false", "true"),
    ("f", "t"),
    ("no", "yes"),
    ("n", "y"),
    ("negative", "positive"),
    ("neg", "pos"),
    ("-", "+"),
    ("off", "on"),
    ("absent", "present"),
    ("inactive", "active"),
    ("unbound", "bound"),
    ("non-binding", "binding"),
    ("nonbinding", "binding"),
    ("non-binder", "binder"),
    ("benign", "malignant"),
    ("control", "case"),
    ("healthy", "diseased"),
    ("healthy", "disease"),
    ("susceptible", "resistant"),
    ("sensitive", "resistant"),
)
_POSITIVE_OF = {frozenset(pair): pair[1] for pair in CONVENTIONAL}


def conventional_positive(first: str, second: str) -> str | None:
    """The positive one of two classes when a convention says which, else ``None``."""
    numbers = [_number(first), _number(second)]
    if None not in numbers and {*numbers} in ({0.0, 1.0}, {-1.0, 1.0}):
        return first if numbers[0] == 1.0 else second
    folded = {first.strip().lower(): first, second.strip().lower(): second}
    positive = _POSITIVE_OF.get(frozenset(folded))
    return None if positive is None or len(folded) != 2 else folded[positive]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def binary_classes(
    classes: Collection[str], positive: str | None, how: str = "--positive {}"
) -> list[str]:
    """``[negative, positive]`` of a binary target; see the module contract."""
    first, second = sorted(classes)  # only to name them in a stable order in messages
    named = f"{first!r} and {second!r}"

    def option(label: str) -> str:
        return how.format(shlex.quote(label))

    if positive is not None and positive not in (first, second):
        raise HelixError(
            f"{option(positive)} names no class of the target; its two classes are {named}. "
            "Name one of them."
        )
    chosen = positive if positive is not None else conventional_positive(first, second)
    if chosen is None:
        raise HelixError(
            f"which class is the positive one? The target's two classes are {named}, and "
            "neither is positive by convention (as 1, true, yes, positive or + are). Name it "
            f"with {option(second)} or {option(first)}: the model's probability is that of the "
            "positive class."
        )
    return [first if chosen == second else second, chosen]
