"""Datasets of a project: named, with immutable versions (by sha256) and named subsets.

Contract:
- Every function takes an open :class:`~sqlalchemy.orm.Session` (the caller commits) and names
  the project and dataset by name; unknown ones raise :class:`~helixserve.errors.ProjectNotFound`
  / :class:`~helixserve.errors.DatasetNotFound` listing what exists. Names follow the model-name
  rules (:class:`~helixserve.errors.InvalidName`) and are unique per project (datasets) or per
  dataset (subsets), else :class:`~helixserve.errors.NameTaken`.
- :func:`add_version` streams an upload into the workspace's dataset files (constant memory,
  refused past ``HELIXSERVE_MAX_UPLOAD_BYTES``), profiles it through the inputs layer
  (:func:`~helixserve.workspace.tables.profile`: per-row report, column roles, preview; a file
  with no valid row is refused) and records a :class:`~helixserve.workspace.models.DatasetVersion`
  whose id is the file's sha256. The same bytes uploaded again give the same version.
- A version's ``profile`` JSON holds the profile (without the refused rows, which are in
  ``report``) plus ``roles``: the roles in use, detected ones until :func:`set_roles` changes
  them. :func:`get_version` finds a version by its sha256 or a unique prefix of at least 8
  characters, or ``latest``.
- :func:`add_subset` checks a subset spec (:func:`~helixserve.workspace.subsets.parse_subset`),
  that the columns it reads exist in the dataset's latest version and that the subsets it names
  exist; :func:`subset_sizes` counts the rows each subset selects in one version;
  :func:`subset_counts` does too, but answers a subset that cannot be counted in that version
  (empty, or a column that version lacks) with the error's message instead of raising.
- :func:`delete_subset` removes a subset (to define it again, e.g.) unless another subset or an
  experiment reads it (:class:`~helixserve.errors.Conflict` naming them: experiments keep the
  subsets they were made with); an unknown one is :class:`~helixserve.errors.NotFound`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from helixserve.errors import (
    Conflict,
    DatasetNotFound,
    InputError,
    InvalidSubset,
    NameTaken,
    NotFound,
)
from helixserve.store.names import check_name
from helixserve.workspace.models import Dataset, DatasetVersion, Experiment, Subset
from helixserve.workspace.projects import get_project, listed
from helixserve.workspace.rows import Role
from helixserve.workspace.space import Workspace
from helixserve.workspace.subsets import (
    AllRows,
    Fraction,
    Rest,
    Where,
    columns_of,
    parse_subset,
    rows,
    subset_table,
)
from helixserve.workspace.tables import UNNAMED, profile

ROLES: tuple[Role, ...] = ("sequence", "number", "category", "split", "id", "image", "text")
SHORTEST_PREFIX = 8


def create_dataset(session: Session, project: str, name: str) -> Dataset:
    """A new, empty dataset ``name`` in ``project``."""
    owner = get_project(session, project)
    check_name(name, "dataset name")
    same = select(Dataset.id).where(Dataset.project_id == owner.id, Dataset.name == name)
    if session.scalar(same) is not None:
        raise NameTaken(
            f"project {project!r} already has a dataset named {name!r}; choose another name, "
            "or upload a new version of it."
        )
    dataset = Dataset(project_id=owner.id, name=name)
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, project: str, name: str) -> Dataset:
    """Dataset ``name`` of ``project``, else :class:`DatasetNotFound` listing its datasets."""
    owner = get_project(session, project)
    query = select(Dataset).where(Dataset.project_id == owner.id, Dataset.name == name)
    dataset = session.scalar(query)
    if dataset is None:
        names = [d.name for d in list_datasets(session, project)]
        raise DatasetNotFound(
            f"project {project!r} has no dataset named {name!r}; "
            + (f"its datasets: {listed(names)}." if names else "it has no datasets yet.")
        )
    return dataset


def list_datasets(session: Session, project: str) -> list[Dataset]:
    """The datasets of ``project``, by name."""
    owner = get_project(session, project)
    query = select(Dataset).where(Dataset.project_id == owner.id).order_by(Dataset.name)
    return list(session.scalars(query))


def versions(session: Session, dataset: Dataset) -> list[DatasetVersion]:
    """The versions of ``dataset``, oldest first."""
    query = (
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset.id)
        .order_by(DatasetVersion.created_at, DatasetVersion.id)
    )
    return list(session.scalars(query))


def add_version(
    session: Session,
    space: Workspace,
    project: str,
    name: str,
    stream: IO[bytes],
    filename: str,
) -> DatasetVersion:
    """Store, profile and record an uploaded file as a version of dataset ``name``."""
    dataset = get_dataset(session, project, name)
    blob = space.blobs.put(stream, filename, space.max_upload_bytes)
    existing = session.get(DatasetVersion, (dataset.id, blob.sha256))
    if existing is not None:
        return existing
    path = space.blobs.local_copy(blob.sha256, space.cache_dir)
    found = profile(path, blob.filename, space.limits)
    summary = found.model_dump(mode="json", exclude={"refused"})
    summary["roles"] = dict(found.roles())
    version = DatasetVersion(
        dataset_id=dataset.id,
        id=blob.sha256,
        filename=blob.filename,
        format=found.format,
        size_bytes=blob.size,
        rows=found.rows,
        good_rows=found.good_rows,
        refused_rows=found.refused_rows,
        profile=summary,
        report={"refused": [r.model_dump(mode="json") for r in found.refused]},
    )
    session.add(version)
    session.flush()
    return version


def get_version(session: Session, project: str, name: str, ref: str = "latest") -> DatasetVersion:
    """A version of dataset ``name``: its sha256, a unique prefix (>= 8 characters) or
    ``latest``; else :class:`DatasetNotFound` saying which versions exist."""
    dataset = get_dataset(session, project, name)
    known = versions(session, dataset)
    if not known:
        raise DatasetNotFound(f"dataset {name!r} has no version yet; upload a file to it first.")
    if ref == "latest":
        return known[-1]
    matches = [v for v in known if v.id.startswith(ref.lower())] if len(ref) >= 8 else []
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(f"{v.id[:12]} ({v.filename})" for v in known)
    why = "is ambiguous" if matches else "is not one of them"
    raise DatasetNotFound(
        f"dataset {name!r} has versions {shown}; {ref!r} {why} (give 'latest', the sha256 or "
        f"its first {SHORTEST_PREFIX}+ characters)."
    )


def set_roles(version: DatasetVersion, roles: Mapping[str, str]) -> dict[str, Role]:
    """Change the roles of some columns of ``version`` (others keep theirs); the roles now."""
    current: dict[str, Role] = dict(version.profile.get("roles", {}))
    for column, role in roles.items():
        if column not in current:
            raise InputError(
                f"the dataset has no column {column!r}; its columns are: {listed(list(current))}.",
                field="roles",
            )
        if role not in ROLES:
            raise InputError(
                f"{role!r} is not a column role; choose one of {', '.join(ROLES)}.",
                field=f"roles.{column}",
            )
        current[column] = role
    version.profile = {**version.profile, "roles": current}
    return current


def add_subset(
    session: Session, project: str, name: str, subset: str, spec: Mapping[str, Any]
) -> Subset:
    """A named subset of dataset ``name`` (see the module contract)."""
    dataset = get_dataset(session, project, name)
    check_name(subset, "subset name")
    parsed = parse_subset(dict(spec), subset)
    named = {s.name: s for s in list_subsets(session, dataset)}
    if subset in named:
        raise NameTaken(f"dataset {name!r} already has a subset named {subset!r}.")
    for ref in _references(parsed):
        if ref not in named:
            raise InvalidSubset(
                f"subset {subset!r} refers to subset {ref!r}, which dataset {name!r} does not "
                f"have; its subsets: {listed(list(named)) or 'none yet'}."
            )
    known = versions(session, dataset)
    if known:
        columns = list(known[-1].profile.get("roles", {}))
        _check_named(parsed, subset, columns)
        missing = sorted(columns_of([parsed]) - set(columns))
        if missing:
            raise InvalidSubset(
                f"subset {subset!r} reads column {missing[0]!r}, which the dataset does not "
                f"have; its columns are: {listed(columns)}.",
                field="column",
            )
    row = Subset(dataset_id=dataset.id, name=subset, spec=parsed.model_dump(mode="json"))
    session.add(row)
    session.flush()
    return row


def delete_subset(session: Session, project: str, name: str, subset: str) -> None:
    """Remove subset ``subset`` of dataset ``name`` (see the module contract)."""
    dataset = get_dataset(session, project, name)
    named = {s.name: s for s in list_subsets(session, dataset)}
    if subset not in named:
        have = listed(list(named)) or "none"
        raise NotFound(f"dataset {name!r} has no subset named {subset!r}; its subsets: {have}.")
    specs = {other: parse_subset(row.spec, other) for other, row in named.items()}
    users = [f"subset {other!r}" for other, spec in specs.items() if subset in _references(spec)]
    experiments = session.scalars(
        select(Experiment).where(Experiment.dataset_id == dataset.id).order_by(Experiment.name)
    )
    for e in experiments:
        if subset in (e.train_subset, e.val_subset, e.test_subset, e.normalise_on):
            users.append(f"experiment {e.name!r}")
    if users:
        raise Conflict(
            f"subset {subset!r} is read by {listed(users)}; delete or change those first "
            "(an experiment keeps the subsets it was made with: make a new subset instead)."
        )
    session.delete(named[subset])
    session.flush()


def _check_named(spec: AllRows | Where | Fraction | Rest, subset: str, columns: list[str]) -> None:
    """Refuse an empty column name: nothing chosen, or the header's column with no name."""
    named = listed([c for c in columns if c])
    note = f" {UNNAMED}" if "" in columns else ""
    for field, what in (("column", "the column the condition reads"), ("group", "a group column")):
        if getattr(spec, field, None) == "":
            raise InvalidSubset(
                f"subset {subset!r}: choose {what}; the dataset's columns are: {named}.{note}",
                field=field,
            )


def _references(spec: AllRows | Where | Fraction | Rest) -> list[str]:
    refs = [getattr(spec, "of", None), *(getattr(spec, "minus", None) or [])]
    return [r for r in refs if r]


def list_subsets(session: Session, dataset: Dataset) -> list[Subset]:
    """The subsets of ``dataset``, by name."""
    query = select(Subset).where(Subset.dataset_id == dataset.id).order_by(Subset.name)
    return list(session.scalars(query))


def subset_sizes(
    space: Workspace, version: DatasetVersion, subsets: list[Subset]
) -> dict[str, int]:
    """How many good rows of ``version`` each subset selects (errors name the subset)."""
    specs = {s.name: parse_subset(s.spec, s.name) for s in subsets}
    path = space.blobs.local_copy(version.id, space.cache_dir)
    roles = version.profile.get("roles")
    table = subset_table(
        path, version.filename, columns_of(specs.values()), roles=roles, limits=space.limits
    )
    return {name: int(rows(spec, table, specs, name=name).size) for name, spec in specs.items()}


def subset_counts(
    space: Workspace, version: DatasetVersion, subsets: list[Subset]
) -> dict[str, int | str]:
    """Subset name -> its row count in ``version``, or the message saying why it has none."""
    specs = {s.name: parse_subset(s.spec, s.name) for s in subsets}
    path = space.blobs.local_copy(version.id, space.cache_dir)
    roles = version.profile.get("roles")
    counts: dict[str, int | str] = {}
    try:
        table = subset_table(
            path, version.filename, columns_of(specs.values()), roles=roles, limits=space.limits
        )
    except InvalidSubset as err:
        return dict.fromkeys(specs, str(err))
    for name, spec in specs.items():
        try:
            counts[name] = int(rows(spec, table, specs, name=name).size)
        except InvalidSubset as err:
            counts[name] = str(err)
    return counts
