"""``helixserve zoo build``: retrain the pretrained zoo from the real datasets, deterministically.

Contract: each :class:`ZooModel` names a zoo model, the dataset folder it reads (under the
``--data`` root, the project's ``shared/data``), the recipe and options it trains with, and the
split rule it is measured on. :func:`build` trains the chosen ones with a fixed seed, publishes
them into ``store`` (the package's zoo store by default) with the ``production`` alias, and
returns one line of measured figures per model (with ``cv``, also the slow cross-validation
criteria of U2 and U3). It never downloads anything: a missing dataset
is an error that names the folder.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from helixserve.errors import HelixError
from helixserve.store.store import ModelStore
from helixserve.training.cli_support import TrainOptions, recipe_and_data, run
from helixserve.training.cv import CVResult, cross_validate, kmer_ridge_cv

ZOO_STORE = Path(__file__).resolve().parents[1] / "zoo" / "store"
TUMOUR_COLUMNS = (
    "id,clump_thickness,uniformity_cell_size,uniformity_cell_shape,marginal_adhesion,"
    "single_epithelial_cell_size,bare_nuclei,bland_chromatin,normal_nucleoli,mitoses,class"
)


@dataclass(frozen=True)
class ZooModel:
    name: str
    folder: str
    split_rule: str

    def options(self, root: Path) -> TrainOptions:
        return _OPTIONS[self.name](root / self.folder)


PRIMER_CARD = """## About

Predicts whether a protein binds a 50-nt DNA sequence (1) or not (0). Data: the simulated
sequences of Zou et al. 2019, "A primer on deep learning in genomics", Nature Genetics 51:12-18
(doi:10.1038/s41588-018-0295-5): 2,000 sequences; the positives carry the motif CGACCGAACTCC.

## Limits

The data are simulated: an exact match of the motif separates the classes perfectly. The model
says nothing about real binding sites. Licence: the source repository states none; cite the paper.
"""

TUMOUR_CARD = """## About

Predicts whether a breast tumour sample is benign or malignant from nine cytology scores (1-10).
Data: UCI Breast Cancer Wisconsin (Original), 699 samples (458 benign / 241 malignant); Wolberg &
Mangasarian, PNAS 87:9193-9196 (1990). Missing `bare_nuclei` values (`?`) are imputed with the
training median. Probabilities are calibrated (sigmoid, 5-fold inside the training rows).

## Limits

A research model from 1990s data of one hospital; not a diagnostic device. 236 rows repeat
another row exactly, so random splits are slightly optimistic. Licence: UCI lists CC BY 4.0 (not
verified from a stored copy); acknowledge Dr. W. H. Wolberg as the dataset asks.
"""

YEAST_CARD = """## About

Predicts the growth rate (a proxy for protein expression under HIS3 selection) of a yeast 5' UTR
of up to 50 nt. Data: Cuperus et al. 2017, Genome Research 27:2015-2024
(doi:10.1101/gr.224964.117), `Native_UTRs.csv.gz` of Seeliglab/2017---Deep-learning-yeast-UTRs:
the 6,710 native UTRs with more than 100 input reads (t0 > 100). Split: random 70/10/20
(train/validation/test), seed 0; one torch thread.

Model: one graph on the one-hot input (70 x 4: the UTR aligned at its 3' end, padded on the 5'
side, 10 all-zero positions each side). It blends the paper's CNN (3 conv x 128 filters of 13 nt,
dropout 0.15, dense 64; early stopping on the validation rows) with a ridge regression on the
counts of every k-mer (k = 1..6) and on the one-hot positions, fitted in closed form on the
training rows (alpha by leave-one-out error); the CNN's share is the one that fits the
validation rows best.

## Limits

Trained on 6,710 native UTRs, not on the paper's 489,348 random UTRs (not available here);
the paper's CNN, trained on those, reaches R2 0.60 on these native rows. The test split holds
1,342 rows, so its R2 moves by about +/- 0.02 with the split. Growth rate is a noisy, indirect
measure of expression, in one strain and one condition. UTRs are aligned at their 3' end (next
to the start codon) and padded on the 5' side; longer UTRs are refused, not truncated.
Licence: MIT (Copyright (c) 2017 Seeliglab).
"""


def _primer(folder: Path) -> TrainOptions:
    return TrainOptions(
        recipe="dna-binary", data=folder / "sequences.txt", name="primer-binding",
        labels=folder / "labels.txt", test_fraction=0.25, seed=42, cv=5,
        description="Does the protein bind this 50-nt DNA sequence?", card_text=PRIMER_CARD,
    )  # fmt: skip


def _yeast(folder: Path) -> TrainOptions:
    return TrainOptions(
        recipe="dna-regression", data=folder / "Native_UTRs.csv.gz", name="yeast-utr",
        sequence_col="UTR", id_col="UTR_name", target="growth_rate", filter="t0>100",
        epochs=40, seed=0, card_text=YEAST_CARD, kmer_ridge=True, threads=1,
        description="How much protein will this yeast 5' UTR give (growth rate)?",
    )  # fmt: skip


def _tumour(folder: Path) -> TrainOptions:
    return TrainOptions(
        recipe="tabular", data=folder / "breast-cancer-wisconsin.data", name="tumor-wisconsin",
        header=TUMOUR_COLUMNS.split(","), target="class", id_col="id", feature_type="int",
        feature_range="1:10", label_names="2=benign,4=malignant", seed=0, cv=10,
        calibrate="sigmoid",
        description="Is this tumour sample benign or malignant?", card_text=TUMOUR_CARD,
    )  # fmt: skip


_OPTIONS = {"primer-binding": _primer, "yeast-utr": _yeast, "tumor-wisconsin": _tumour}
ZOO = [
    ZooModel("primer-binding", "zou2019_primer_tf_binding",
             "random 75/25 split, seed 42 (the primer tutorial's); 5-fold CV on the rest"),
    ZooModel("yeast-utr", "cuperus2017_yeast_utr",
             "native UTRs with t0 > 100 (6,710 rows), random 70/10/20 split, seed 0"),
    ZooModel("tumor-wisconsin", "uci_breast_cancer_wisconsin_original",
             "stratified random 70/10/20 split, seed 0; 10-fold CV on the rest"),
]  # fmt: skip


def tumour_repeated_cv(root: Path, repeats: int = 5) -> str:
    """The U3 criterion on all 699 rows: 10-fold stratified CV averaged over ``repeats``
    shuffles; again with identical rows kept within one fold; Brier score."""
    options = _tumour(root / "uci_breast_cancer_wisconsin_original")
    recipe, data = recipe_and_data(options)
    plain = [cross_validate(lambda: copy.deepcopy(recipe), data, folds=10, seed=s)
             for s in range(repeats)]  # fmt: skip
    data.groups = [repr((row, target)) for row, target in zip(data.inputs, data.targets,
                                                                strict=True)]  # fmt: skip
    grouped = [cross_validate(lambda: copy.deepcopy(recipe), data, folds=10, seed=s)
               for s in range(repeats)]  # fmt: skip

    def mean(runs: list[CVResult], metric: str) -> float:
        return sum(r.mean(metric) for r in runs) / len(runs)

    return (f"tumor-wisconsin, 10-fold stratified CV x {repeats} shuffles on all {len(data)} "
            f"rows ({recipe.describe()}): accuracy {mean(plain, 'accuracy'):.4f}, Brier "
            f"{mean(plain, 'brier'):.4f}; with identical rows kept in one fold: accuracy "
            f"{mean(grouped, 'accuracy'):.4f}")  # fmt: skip


def yeast_cv(root: Path, folds: int = 5) -> str:
    """The U2 criterion on all rows with t0 > 100: k-fold CV R2 of the zoo recipe next to the
    k-mer (k = 1..6) ridge baseline, on the same folds in the same run."""
    options = _yeast(root / "cuperus2017_yeast_utr")
    recipe, data = recipe_and_data(options)
    torch.set_num_threads(options.threads)
    model = cross_validate(lambda: copy.deepcopy(recipe), data, folds=folds, seed=options.seed)
    baseline = kmer_ridge_cv(data, folds=folds, seed=options.seed)
    return (f"yeast-utr, {folds}-fold CV on all {len(data)} rows: R2 {model.mean('r2'):.4f} "
            f"+/- {model.std('r2'):.4f} (folds {_r2s(model)}); k-mer ridge baseline, same "
            f"folds: {baseline.mean('r2'):.4f} +/- {baseline.std('r2'):.4f} "
            f"(folds {_r2s(baseline)})")  # fmt: skip


def _r2s(result: CVResult) -> str:
    return " ".join(f"{fold['r2']:.4f}" for fold in result.folds)


def build(root: Path, store: ModelStore, only: list[str] | None = None,
          cv: bool = True) -> list[str]:  # fmt: skip
    """Train, publish and promote the chosen zoo models; see the module contract."""
    chosen = [m for m in ZOO if not only or m.name in only]
    unknown = sorted(set(only or []) - {m.name for m in ZOO})
    if unknown:
        raise HelixError(f"no zoo model named {', '.join(unknown)}; the zoo has "
                         f"{', '.join(m.name for m in ZOO)}.")  # fmt: skip
    lines = []
    for model in chosen:
        folder = root / model.folder
        if not folder.is_dir():
            raise HelixError(f"dataset folder {folder} is missing; pass --data with the folder "
                             "that holds the project's datasets (shared/data).")  # fmt: skip
        started = time.perf_counter()
        outcome = run(model.options(root), store)
        store.set_alias(model.name, "production", outcome.manifest.version)
        figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(outcome.manifest.metrics.items()))
        lines.append(
            f"{model.name}@{outcome.manifest.version} ({model.split_rule}): {figures}; "
            f"{time.perf_counter() - started:.0f} s"
        )
        if cv and model.name == "tumor-wisconsin":
            lines.append(tumour_repeated_cv(root))
        if cv and model.name == "yeast-utr":
            lines.append(yeast_cv(root))
    return lines
