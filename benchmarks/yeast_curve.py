"""What bounds yeast-utr's CV R² (issue 18's target 0.60; docs/zoo.md, "Reaching the open targets").

Run with ``python -m benchmarks.yeast_curve curve`` or ``... seeds`` (needs ../shared/data; about
10 CPU-minutes per 5,000-row fit on one thread). Both use the zoo's yeast-utr recipe and data
(``training.zoo.ZOO``'s yeast-utr options: native UTRs with t0 > 100) with one torch thread:

- ``curve``: the learning curve on the zoo's 5 CV folds (seed 0). Each fold's training rows are
  subsampled to ``--fractions`` (nested subsets of one fixed permutation per fold), 10% of them
  held for early stopping and the blend share (as :func:`~helixserve.training.cv.cross_validate`
  does). Each fit is scored on its whole held-out fold: the blend, and its ridge and CNN parts
  alone. At 100% the fit is the one ``zoo build``'s CV makes.
- ``seeds``: the CNN averaged over ``--seeds`` seeds inside the blend (the same ridge; the
  share chosen on the validation rows) against the single seed-0 CNN. ``--rows nontest`` runs a
  3-fold CV on the 5,368 non-test rows of the zoo split, for choosing; ``--rows all`` runs
  the zoo's 5-fold CV on all 6,710 rows, for measuring.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sklearn.model_selection import train_test_split

from helixserve.training.cli_support import recipe_and_data
from helixserve.training.cv import fold_indices
from helixserve.training.data import split
from helixserve.training.kmers import Blend, best_share
from helixserve.training.metrics import regression_metrics
from helixserve.training.publish import encode_inputs
from helixserve.training.recipes import DnaRegression
from helixserve.training.train_options import TrainOptions
from helixserve.training.zoo import ZOO

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int_]


def _options() -> TrainOptions:
    return next(m for m in ZOO if m.name == "yeast-utr").options(DATA)


def _data() -> tuple[DnaRegression, npt.NDArray[Any], Floats]:
    recipe, data = recipe_and_data(_options())
    assert isinstance(recipe, DnaRegression)
    if not recipe.adapted:
        recipe.adapt(data)
    x = encode_inputs(recipe, data.inputs)
    return recipe, x, np.array([float(t) for t in data.targets])


def _r2(truth: Floats, predicted: Floats) -> float:
    return float(regression_metrics(truth, predicted)["r2"])


def _fit(
    recipe: DnaRegression, x: npt.NDArray[Any], y: Floats, rows: Indices, seed: int
) -> tuple[DnaRegression, Indices]:
    """A fresh recipe fitted on ``rows`` (10% of them for early stopping and the share)."""
    fit, val = train_test_split(rows, test_size=0.1, random_state=0)
    fitted = copy.deepcopy(recipe)
    fitted.fit(x[fit], y[fit], x[val], y[val], labels=None, seed=seed)
    return fitted, val


def _parts(fitted: DnaRegression, x: npt.NDArray[Any]) -> tuple[Floats, Floats]:
    """The blend's ridge and CNN outputs (standardised units)."""
    blend = fitted.model
    assert isinstance(blend, Blend)
    with torch.no_grad():
        inputs = torch.as_tensor(x)
        ridge = blend.ridge(inputs).squeeze(1).numpy().astype(np.float64)
        cnn = blend.network(inputs).squeeze(1).numpy().astype(np.float64)
    return ridge, cnn


def curve(fractions: list[float]) -> None:
    recipe, x, y = _data()
    for fold, (train, test) in enumerate(fold_indices(len(x), None, 5, 0)):
        order = np.random.default_rng(1000 + fold).permutation(train)
        for fraction in fractions:
            started = time.perf_counter()
            rows = np.sort(order[: round(fraction * len(train))])
            fitted, _ = _fit(recipe, x, y, rows, seed=0)
            ridge, cnn = _parts(fitted, x[test])
            blend = fitted.predict_proba(x[test]).reshape(-1)
            units = fitted.scale, fitted.shift
            print(
                f"fold {fold} fraction {fraction:.2f} rows {len(rows)}: blend "
                f"{_r2(y[test], blend):.4f} ridge {_r2(y[test], ridge * units[0] + units[1]):.4f} "
                f"cnn {_r2(y[test], cnn * units[0] + units[1]):.4f} share "
                f"{fitted.fitted['cnn_share']:.1f}; {time.perf_counter() - started:.0f} s",
                flush=True,
            )


def seeds(count: int, rows: str) -> None:
    recipe, x, y = _data()
    if rows == "nontest":
        _, data = recipe_and_data(_options())
        parts = split(data, task="regression", seed=0, test_fraction=0.2)
        pool = np.sort(np.concatenate([parts.train, parts.val]))
        folds = [(pool[a], pool[b]) for a, b in fold_indices(len(pool), None, 3, 0)]
    else:
        folds = fold_indices(len(x), None, 5, 0)
    for fold, (train, test) in enumerate(folds):
        fits = [_fit(recipe, x, y, train, seed) for seed in range(count)]
        val = fits[0][1]
        scale, shift = fits[0][0].scale, fits[0][0].shift
        outputs = [(_parts(f, x[val]), _parts(f, x[test])) for f, _ in fits]
        scores = []
        for members in (1, count):
            cnn_val = np.mean([o[0][1] for o in outputs[:members]], axis=0)
            cnn_test = np.mean([o[1][1] for o in outputs[:members]], axis=0)
            share = best_share(outputs[0][0][0], cnn_val, (y[val] - shift) / scale)
            blend = (1 - share) * outputs[0][1][0] + share * cnn_test
            scores.append(
                f"{members} seed(s) share {share:.1f} R2 {_r2(y[test], blend * scale + shift):.4f}"
            )
        print(
            f"{rows} fold {fold} ({len(train)}/{len(test)} rows): " + "; ".join(scores), flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["curve", "seeds"])
    parser.add_argument("--fractions", default="1.0,0.25,0.5,0.75")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", choices=["nontest", "all"], default="nontest")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "curve":
        curve([float(f) for f in args.fractions.split(",")])
    else:
        seeds(args.seeds, args.rows)


if __name__ == "__main__":
    main()
