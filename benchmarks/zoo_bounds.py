"""What bounds the open zoo targets of issue 18 (docs/zoo.md, "Reaching the open targets").

Run with ``python -m benchmarks.zoo_bounds amr`` or ``... rxrx1`` (needs ../shared/data and the
shipped zoo). Nothing is trained on the test isolates or the unseen experiment, and nothing is tuned
on them:

- ``amr``: the served ``amr-resistance`` model's isolate calls on the *K. pneumoniae* test
  isolates (highest gene, its score, ResFinder's call), then the training isolates' labels
  against ResFinder. Last, a gene-name presence/absence model of the whole isolate (not the
  served contract), chosen by 5-fold CV x 5 shuffles on the training isolates and measured once
  on the test isolates.
- ``rxrx1``: for every w1 site, the served class probabilities and the calls of the 6 x 6 tiles
  (the crops the graph averages), the mean brightness, and a count and median size of the
  objects (image smoothed with sigma 2 px, above mean + 0.5 sd, at least 20 px); then, per
  training experiment and per unseen site, the mean P(HEPG2) of the tiles whose foreground share
  is 20-30%.
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip
import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from scipy import ndimage
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from helixserve.runtime import Predictor
from helixserve.store.configured import pretrained_store
from helixserve.training.isolates import isolate_scores
from helixserve.training.nets import TiledImageCNN, tile_starts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
Floats = npt.NDArray[np.float64]


def _klebsiella() -> list[dict[str, str]]:
    with gzip.open(DATA / "amr_gene_resistance_hzi" / "genes_long.csv.gz", "rt") as handle:
        return [r for r in csv.DictReader(handle) if r["dataset"].startswith("Klebsiella")]


def amr_served(rows: list[dict[str, str]]) -> None:
    """The shipped model's call, score and top genes for each test isolate."""
    store = pretrained_store()
    predictor = Predictor.from_store(store, "amr-resistance")
    threshold = store.manifest("amr-resistance").metrics["isolate_threshold"]
    test = [r for r in rows if r["split"] == "test"]
    probabilities = predictor.predict_batch([r["sequence"] for r in test]).decoded.probabilities
    assert probabilities is not None
    genes = probabilities[:, 1] if probabilities.ndim == 2 else probabilities
    names, scores = isolate_scores(genes, [r["isolate_id"] for r in test])
    print(f"served amr-resistance, isolate threshold {threshold:.3f}")
    for name, score in zip(names, scores, strict=True):
        mine = [(float(p), r) for p, r in zip(genes, test, strict=True) if r["isolate_id"] == name]
        top = sorted(mine, key=lambda pair: -pair[0])[:3]
        label, resfinder = int(top[0][1]["label"]), int(top[0][1]["resfinder_pred"])
        call = int(score >= threshold)
        print(
            f"  {name} label {label} ResFinder {resfinder} model {call} "
            f"({'right' if call == label else 'MISSED'}) highest {score:.3f}; {len(mine)} genes; "
            "top " + ", ".join(f"{r['gene']} {p:.2f}" for p, r in top)
        )


def amr_training(rows: list[dict[str, str]]) -> None:
    """Training isolates: label against ResFinder, and two genes' carriers by label."""
    genes, label, resfinder = _isolates(rows, "train")
    pairs = collections.Counter((label[i], resfinder[i]) for i in genes)
    print(f"training isolates (label, ResFinder): {dict(sorted(pairs.items()))}")
    for gene in ("ramR", "blaCTX-M-15"):
        carriers = collections.Counter(label[i] for i in genes if gene in genes[i])
        totals = collections.Counter(label.values())
        print(
            f"  {gene}: in {carriers[0]}/{totals[0]} susceptible and {carriers[1]}/{totals[1]} "
            "resistant training isolates"
        )


def _isolates(
    rows: list[dict[str, str]], part: str
) -> tuple[dict[str, set[str]], dict[str, int], dict[str, int]]:
    genes: dict[str, set[str]] = collections.defaultdict(set)
    label, resfinder = {}, {}
    for r in rows:
        if r["split"] == part:
            genes[r["isolate_id"]].add(r["gene"])
            label[r["isolate_id"]] = int(r["label"])
            resfinder[r["isolate_id"]] = int(r["resfinder_pred"])
    return dict(genes), label, resfinder


def amr_presence(rows: list[dict[str, str]]) -> None:
    """A gene-name presence model of the isolate, chosen on the training isolates only."""
    train, train_label, _ = _isolates(rows, "train")
    test, test_label, _ = _isolates(rows, "test")
    vocabulary = sorted(set().union(*train.values()))

    def table(isolates: dict[str, set[str]]) -> Floats:
        return np.array([[g in isolates[i] for g in vocabulary] for i in sorted(isolates)], float)

    x, y = table(train), np.array([train_label[i] for i in sorted(train)])
    candidates: dict[str, ClassifierMixin] = {
        f"logistic C={c}": LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        for c in (0.01, 0.1, 1, 10)
    }
    for leaf in (1, 3, 5):
        candidates[f"forest leaf={leaf}"] = RandomForestClassifier(
            300, min_samples_leaf=leaf, class_weight="balanced", random_state=0
        )
    cv = {name: _cv_balanced(model, x, y) for name, model in candidates.items()}
    for name, score in cv.items():
        print(f"  presence model {name}: training CV balanced accuracy {score:.3f}")
    chosen = max(cv, key=lambda name: cv[name])
    model = candidates[chosen].fit(x, y)
    truth = np.array([test_label[i] for i in sorted(test)])
    calls = model.predict(table(test))
    counts = np.array([len(test[i]) for i in sorted(test)])
    logits = model.decision_function(table(test)) if hasattr(model, "decision_function") else None
    print(
        f"chosen {chosen}: test {int(np.sum(calls == truth))}/{len(truth)}, balanced accuracy "
        f"{balanced_accuracy_score(truth, calls):.3f}; missed "
        + ", ".join(i for i, c, t in zip(sorted(test), calls, truth, strict=True) if c != t)
    )
    if logits is not None:
        print(
            f"  its test logits {logits.min():+.3f}..{logits.max():+.3f}, Pearson with the "
            f"number of genes {np.corrcoef(logits, counts)[0, 1]:.2f}"
        )


def _cv_balanced(model: ClassifierMixin, x: Floats, y: npt.NDArray[np.int_]) -> float:
    scores = []
    for shuffle in range(5):
        folds = StratifiedKFold(5, shuffle=True, random_state=shuffle)
        scores.append(balanced_accuracy_score(y, cross_val_predict(model, x, y, cv=folds)))
    return float(np.mean(scores))


def rxrx1() -> None:
    """Served probabilities, tile calls, brightness and objects of every w1 site."""
    folder = DATA / "rxrx1_sample_images"
    store = pretrained_store()
    predictor = Predictor.from_store(store, "rxrx1-celltype")
    labels = predictor.manifest.output.labels
    assert labels is not None
    _, files = store.read_files("rxrx1-celltype")
    tiles = _tile_model(files["weights.npz"], len(labels))
    with (folder / "manifest.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["channel"] == "1"]
    banded: dict[str, list[float]] = {}
    print("site: served " + " ".join(labels) + " | tile calls | mean pixel | objects, median px")
    for r in rows:
        raw = (folder / r["path"]).read_bytes()
        served = predictor.predict_batch([raw]).decoded.probabilities
        assert served is not None
        pixels = np.asarray(Image.open(folder / r["path"]), dtype=np.float32) / 255.0
        probabilities = _tile_probabilities(tiles, pixels)
        calls = np.bincount(probabilities.argmax(1), minlength=len(labels))
        count, size = _objects(pixels)
        share = _tile_foreground(pixels, tiles)
        middle = (share >= 0.2) & (share < 0.3)
        key = (
            r["experiment"]
            if r["split"] == "train"
            else f"{r['experiment']}/Plate{r['plate']}/s{r['site']}"
        )
        banded.setdefault(key, []).extend(probabilities[middle, 0])
        print(
            f"  {r['experiment']}/Plate{r['plate']}/s{r['site']}: "
            + " ".join(f"{p:.3f}" for p in served[0])
            + f" | {calls.tolist()} | {pixels.mean() * 255:.1f} | {count}, {size:.0f}"
        )
    print(f"tiles with 20-30% foreground: mean P({labels[0]})")
    for key, values in banded.items():
        print(f"  {key}: {np.mean(values):.2f} ({len(values)} tiles)")


def _tile_model(weights: bytes, classes: int) -> TiledImageCNN:
    """The shipped network (the 96-px crop classifier the graph tiles), from its weights."""
    arrays = np.load(io.BytesIO(weights))
    net = TiledImageCNN(1, classes, 96, 6, 0.3, True, 2)
    net.load_state_dict(
        {k: torch.tensor(arrays[k]) for k in arrays.files if not k.startswith("__")}
    )
    return net.eval()


def _tile_probabilities(net: TiledImageCNN, pixels: npt.NDArray[np.float32]) -> Floats:
    starts = tile_starts(pixels.shape[0], net.crop, net.tiles)
    crops = np.stack(
        [pixels[None, i : i + net.crop, j : j + net.crop] for i in starts for j in starts]
    )
    with torch.no_grad():
        return torch.softmax(net.logits(torch.as_tensor(crops)), 1).numpy().astype(np.float64)


def _foreground(pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """The objects' mask: the image smoothed with sigma 2 px, above mean + 0.5 sd."""
    smooth = ndimage.gaussian_filter(pixels, 2)
    return np.asarray(smooth > smooth.mean() + 0.5 * smooth.std())


def _tile_foreground(pixels: npt.NDArray[np.float32], net: TiledImageCNN) -> Floats:
    """Each tile's share of foreground pixels, in the order of :func:`_tile_probabilities`."""
    mask = _foreground(pixels)
    starts = tile_starts(pixels.shape[0], net.crop, net.tiles)
    return np.array(
        [mask[i : i + net.crop, j : j + net.crop].mean() for i in starts for j in starts]
    )


def _objects(pixels: npt.NDArray[np.float32]) -> tuple[int, float]:
    labelled, _ = ndimage.label(_foreground(pixels))
    sizes = np.bincount(labelled.ravel())[1:]
    sizes = sizes[sizes >= 20]
    return len(sizes), float(np.median(sizes)) if len(sizes) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["amr", "rxrx1"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.target == "amr":
        rows = _klebsiella()
        amr_served(rows)
        amr_training(rows)
        amr_presence(rows)
    else:
        rxrx1()


if __name__ == "__main__":
    main()
