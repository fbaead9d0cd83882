"""From a claimed run to what the training layer is given: a local training file and its options.

Contract:
- :func:`prepare` reads the run's experiment (:func:`~helixserve.workspace.experiments.spec_of`),
  copies its dataset version to this machine (:meth:`DatasetBlobs.local_copy`, verified by
  sha256), evaluates the dataset's subsets on the version's good rows
  (:func:`~helixserve.workspace.subsets.subset_table`, :func:`~helixserve.workspace.subsets.rows`)
  and labels each good row ``T`` / ``V`` / ``test`` / ``''``
  (:func:`~helixserve.workspace.subsets.split_labels`). It writes, into ``work_dir``, the good
  rows that are in one of the experiment's subsets, with every column as text plus
  :data:`SPLIT_COLUMN`: ``train.csv`` for tables and sequence files (FASTA as ``id, sequence,
  description``); for a zip of images, the images (``images/<row>.<ext>``, names made here, so no
  path of the archive is ever written) and ``labels.csv`` naming them. Rows in none of the subsets
  are left out and counted. The file is the same, byte for byte, every time a run is prepared,
  so a resumed run's checkpoint matches it.
- The :class:`~helixserve.training.train_options.TrainOptions` name the recipe, its parameters
  (``epochs`` always given: the run's ``epochs_planned`` when set, else the experiment's, else the
  declared default), the block stack, the target, the columns the recipe reads (``sequence_col``
  / ``features`` / ``path_col``; the dataset's ``id`` column when it has one),
  ``split_col=SPLIT_COLUMN``, the seed, and ``init_from``: the bundle of ``init_from_run``
  (clone-and-continue). Without a test subset the training layer uses the validation subset as
  the held-out test rows and early-stops on a share of the training rows (as ``helixserve train``
  does with a T/V split column); :attr:`Prepared.notes` says so.
- ``normalise_on``: a neural regression standardises its target on the training subset itself, so
  that subset is accepted (others are refused); the ``tabular`` recipe's trees do not depend on a
  feature's scale, so its features' statistics on the subset are computed (refusing a subset with
  no numbers) and noted, and the model keeps reading raw values; other recipes read no number
  column and refuse it.
- Errors are :class:`~helixserve.errors.HelixError` subclasses whose message says what to change:
  a subset the experiment names that no longer exists, a dataset column named ``__subset``, a
  clone-and-continue parent without a trained bundle, ``normalise_on`` as above.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from helixserve.errors import HelixError, InputError, InvalidSubset
from helixserve.inputs.imagezip import IMAGE_EXTENSIONS, labels_table, read_image
from helixserve.inputs.records import BadRecord
from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED
from helixserve.training.train_options import TrainOptions
from helixserve.workspace.checks import READS
from helixserve.workspace.datasets import list_subsets
from helixserve.workspace.experiments import ExperimentSpec, get_experiment, spec_of
from helixserve.workspace.models import Dataset, DatasetVersion, Project, Run
from helixserve.workspace.rows import ProfileLimits, RowChecker, open_rows
from helixserve.workspace.space import Workspace, run_model_name
from helixserve.workspace.subsets import (
    Rows,
    SubsetTable,
    columns_of,
    normalise_stats,
    parse_subset,
    rows,
    split_labels,
    subset_table,
)

SPLIT_COLUMN = "__subset"
TRAIN_FILE = "train.csv"
IMAGES_FILE = "labels.csv"
PARTS = ("T", "V", "test")


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` made: the options to train with, the rows per part (``T``, ``V``,
    ``test``, and ``left out``: good rows in no subset) and lines for the run's log."""

    options: TrainOptions
    sizes: dict[str, int]
    notes: list[str] = field(default_factory=list)


def prepare(session: Session, space: Workspace, run: Run, work_dir: Path) -> Prepared:
    """Write run ``run``'s training file into ``work_dir``; see the module contract."""
    spec = spec_of(get_experiment(session, run.experiment_id))
    version = session.get_one(DatasetVersion, (spec.dataset_id, spec.dataset_version))
    path = space.blobs.local_copy(version.id, space.cache_dir)
    roles: dict[str, Any] = dict(version.profile.get("roles", {}))
    if SPLIT_COLUMN in roles:
        raise InputError(
            f"the dataset has a column named {SPLIT_COLUMN!r}, the name the worker gives the "
            "split; rename that column and upload the file again.",
            field="dataset",
        )
    table, picked = _subsets(session, space, spec, version, path, roles)
    labels = split_labels(
        table.n_rows,
        (spec.train_subset, picked[spec.train_subset]),
        (spec.val_subset, picked[spec.val_subset]),
        (spec.test_subset, picked[spec.test_subset]) if spec.test_subset else None,
    )
    notes = _normalise(spec, table, picked)
    work_dir.mkdir(parents=True, exist_ok=True)
    limits = space.limits
    if version.format == "images":
        data, image_col = _write_images(path, version.filename, roles, labels, work_dir, limits)
    else:
        data, image_col = _write_table(path, version.filename, roles, labels, work_dir, limits), ""
    options = _options(session, spec, run, data, roles, image_col)
    options.description = _description(session, spec, run, version)
    sizes = {part: labels.count(part) for part in PARTS}
    sizes["left out"] = labels.count("")
    if not spec.test_subset:
        notes.append(
            f"no test subset: the validation subset '{spec.val_subset}' is the held-out set the "
            "test metrics are measured on, and early stopping watches a random 10% of the "
            f"training subset '{spec.train_subset}' (as helixserve train does with a T/V column)."
        )
    return Prepared(options, sizes, notes)


def _subsets(
    session: Session,
    space: Workspace,
    spec: ExperimentSpec,
    version: DatasetVersion,
    path: Path,
    roles: Mapping[str, Any],
) -> tuple[SubsetTable, dict[str, Rows]]:
    """The good rows' table (subset columns and tabular features) and each chosen subset's rows."""
    dataset = session.get_one(Dataset, spec.dataset_id)
    specs = {s.name: parse_subset(s.spec, s.name) for s in list_subsets(session, dataset)}
    chosen = [spec.train_subset, spec.val_subset, spec.test_subset, spec.normalise_on]
    wanted = [name for name in dict.fromkeys(chosen) if name]
    for name in wanted:
        if name not in specs:
            raise InvalidSubset(
                f"the experiment uses subset {name!r}, which the dataset no longer has; define it "
                "again, or clone the experiment with other subsets."
            )
    columns = columns_of(specs.values()) | set(_features(spec))
    table = subset_table(path, version.filename, sorted(columns), roles=roles, limits=space.limits)
    return table, {name: rows(specs[name], table, specs, name=name) for name in wanted}


def _features(spec: ExperimentSpec) -> list[str]:
    return list(spec.inputs.get("features", [])) if READS[spec.recipe] == "features" else []


def _normalise(spec: ExperimentSpec, table: SubsetTable, picked: Mapping[str, Rows]) -> list[str]:
    """Lines for the log about ``normalise_on`` (see the module contract), or a refusal."""
    subset = spec.normalise_on
    if subset is None:
        return []
    if spec.recipe == "dna-regression":
        if subset != spec.train_subset:
            raise InputError(
                f"normalise_on '{subset}': the dna-regression recipe standardises its target on "
                f"the training subset ('{spec.train_subset}') itself; set normalise_on to it, or "
                "leave it empty.",
                field="normalise_on",
            )
        return [
            f"target standardised on the training subset '{subset}' (mean and std of its rows; "
            "the served model answers in the target's units)."
        ]
    features = _features(spec)
    if not features:
        raise InputError(
            f"normalise_on '{subset}': the {spec.recipe} recipe reads {READS[spec.recipe]}s, no "
            "number columns, so there is nothing to standardise; leave normalise_on empty.",
            field="normalise_on",
        )
    stats = normalise_stats({f: table.numbers(f) for f in features}, picked[subset], subset=subset)
    shown = ", ".join(f"{n} {s.mean:.4g} ± {s.std:.4g}" for n, s in list(stats.items())[:6])
    return [
        f"normalise_on '{subset}': feature mean ± std on its rows: {shown}"
        + (", ..." if len(stats) > 6 else "")
        + ". Trees split on thresholds, which standardising does not change, so the model reads "
        "the raw values (and so does the served model)."
    ]


def _good_rows(
    path: Path, filename: str, roles: Mapping[str, Any], limits: ProfileLimits
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """``(header, values)`` of each good row in file order: the rows subset tables number."""
    checker = RowChecker(roles, limits)
    with open_rows(path, filename, limits) as opened:
        for item in opened.items:
            if isinstance(item, BadRecord) or checker.problem(item.values) is not None:
                continue
            yield opened.header, item.values


def _write_table(
    path: Path,
    filename: str,
    roles: Mapping[str, Any],
    labels: list[str],
    work_dir: Path,
    limits: ProfileLimits,
) -> Path:
    target = work_dir / TRAIN_FILE
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for index, (header, values) in enumerate(_good_rows(path, filename, roles, limits)):
            if index == 0:
                writer.writerow([*header, SPLIT_COLUMN])
            if labels[index]:
                writer.writerow([*(values.get(name, "") for name in header), labels[index]])
    return target


def _write_images(
    path: Path,
    filename: str,
    roles: Mapping[str, Any],
    labels: list[str],
    work_dir: Path,
    limits: ProfileLimits,
) -> tuple[Path, str]:
    """Extract the kept rows' images under generated names; ``labels.csv`` and the path column."""
    column = next((name for name, role in roles.items() if role == "image"), None)
    if column is None:
        raise InputError(
            "the image dataset has no column with the role 'image'; set the role of the column "
            "that names each image file.",
            field="roles",
        )
    folder, target = work_dir / "images", work_dir / IMAGES_FILE
    folder.mkdir(exist_ok=True)
    with (
        zipfile.ZipFile(path) as archive,
        target.open("w", encoding="utf-8", newline="") as handle,
    ):
        table = labels_table(archive)
        writer = csv.writer(handle, lineterminator="\n")
        for index, (header, values) in enumerate(_good_rows(path, filename, roles, limits)):
            if index == 0:
                writer.writerow([*header, SPLIT_COLUMN])
            if not labels[index]:
                continue
            member, data = read_image(archive, table, values[column])
            suffix = Path(member).suffix.lower()
            name = f"images/{index:08d}{suffix if suffix in IMAGE_EXTENSIONS else '.img'}"
            (work_dir / name).write_bytes(data)
            row = {**values, column: name}
            writer.writerow([*(row.get(h, "") for h in header), labels[index]])
    return target, column


def _options(
    session: Session,
    spec: ExperimentSpec,
    run: Run,
    data: Path,
    roles: Mapping[str, Any],
    image_col: str,
) -> TrainOptions:
    reads = READS[spec.recipe]
    ids = [name for name, role in roles.items() if role == "id"]
    return TrainOptions(
        recipe=spec.recipe,
        data=data,
        name=run_model_name(run.id),
        target=spec.target,
        positive=spec.positive,
        sequence_col=spec.inputs.get("sequence") if reads == "sequence" else None,
        id_col=ids[0] if ids and reads != "image" else None,
        split_col=SPLIT_COLUMN,
        features=_features(spec) or None,
        path_col=image_col or "path",
        seed=spec.seed,
        init_from=_parent_bundle(session, run),
        params=planned_params(spec.recipe, spec.params, run.epochs_planned),
        blocks=None if spec.blocks is None else [dict(b) for b in spec.blocks],
    )


def _description(session: Session, spec: ExperimentSpec, run: Run, version: DatasetVersion) -> str:
    """Where the model came from, for its card: the project, experiment, run, dataset version and
    subsets (not the worker's own ``train.csv``)."""
    experiment = get_experiment(session, run.experiment_id)
    dataset = session.get_one(Dataset, spec.dataset_id)
    project = session.get_one(Project, experiment.project_id)
    test = f", test '{spec.test_subset}'" if spec.test_subset else ""
    return (
        f"{spec.recipe} model trained in the workspace: project {project.name}, experiment "
        f"{experiment.name}, run {run.number}; dataset {dataset.name} version {version.id[:12]} "
        f"({version.filename}), subsets training '{spec.train_subset}', validation "
        f"'{spec.val_subset}'{test}."
    )


def planned_params(
    recipe: str, params: Mapping[str, Any], epochs_planned: int | None
) -> dict[str, Any]:
    """The experiment's parameters with ``epochs`` spelled out (see the module contract)."""
    chosen = dict(params)
    names = {d.name: d for d in declarations(DECLARED[recipe])}
    if "epochs" in names:
        chosen["epochs"] = epochs_planned or chosen.get("epochs", names["epochs"].default)
    return chosen


def _parent_bundle(session: Session, run: Run) -> str | None:
    """The bundle a clone-and-continue run starts from (``run-<id>@<version>``), if any."""
    if run.init_from_run is None:
        return None
    parent = session.get(Run, run.init_from_run)
    if parent is None or parent.bundle is None:
        state = "deleted" if parent is None else parent.status.value
        raise HelixError(
            f"this run continues from the weights of run {run.init_from_run!r}, which has no "
            f"trained model (it is {state}); continue from a finished run, or train from scratch."
        )
    return parent.bundle
