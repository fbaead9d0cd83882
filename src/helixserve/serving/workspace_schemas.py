"""Request and response bodies of the workspace API (``/api/v1/projects/...``, ``/api/v1/recipes``),
declared once.

Contract:
- Request bodies (``...In``) refuse unknown fields; a body that breaks its model is a 400
  (``body.name: Field required``), answered by the app's validation handler. What a body names
  is checked by the workspace operations, whose typed errors carry the field: a subset spec
  (``spec`` is taken as JSON and parsed by :func:`~helixserve.workspace.subsets.parse_subset`,
  so its refusal is the workspace's 422 naming the field, documented with the
  :data:`~helixserve.workspace.subsets.SubsetSpec` schema), hyper-parameters, block stacks.
- An experiment's body is the workspace's
  :class:`~helixserve.workspace.checks.ExperimentRequest` (whose settings are declared once, in
  :class:`~helixserve.workspace.experiments.ExperimentSettings`) and a name; a clone's
  ``changes`` are the same fields, each optional.
- Response bodies (``...Out``, lists, details) are made from the ORM rows by their ``of``
  class methods, so every route answers one object the same way: each field is the row's
  attribute of its name unless ``of`` gives it. Timestamps are ISO 8601 UTC.
  Comparisons reuse :class:`~helixserve.workspace.compare.Comparison`; profile columns and
  refused rows reuse :mod:`helixserve.workspace.tables`' models.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema, create_model

from helixserve.workspace.checks import ExperimentRequest
from helixserve.workspace.models import (
    Dataset,
    DatasetVersion,
    Deployment,
    Experiment,
    Project,
    Run,
    RunEpoch,
    RunLog,
    Subset,
)
from helixserve.workspace.subsets import SubsetSpec
from helixserve.workspace.tables import ColumnProfile, RefusedRow

Engine = Literal["local", "ray"]
SpecJson = Annotated[dict[str, Any], WithJsonSchema(TypeAdapter(SubsetSpec).json_schema())]
REFUSED_PAGE = 100


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    @classmethod
    def _of_row(cls, row: object, **given: Any) -> Self:
        """This body from ``row``: each field not ``given`` is the row's attribute of its name."""
        found = {name: getattr(row, name) for name in cls.model_fields if name not in given}
        return cls.model_validate(found | given)


# --- projects ----------------------------------------------------------------------------------


class ProjectIn(_In):
    name: str = Field(description="1-64 of A-Z a-z 0-9 . _ -", examples=["yeast-utr"])
    title: str = Field(default="", max_length=200, description="a title for people")


class ProjectChange(_In):
    name: str | None = Field(default=None, description="a new name")
    archived: bool | None = Field(default=None, description="archive (true) or restore (false)")


class ProjectOut(_Out):
    id: str
    name: str
    title: str
    archived: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Project) -> Self:
        return cls._of_row(row)


class ProjectCounts(BaseModel):
    datasets: int
    experiments: int
    deployments: int
    runs: dict[str, int] = Field(description="runs per state (queued, running, finished, ...)")


class ProjectDetail(ProjectOut):
    counts: ProjectCounts


class ProjectList(BaseModel):
    projects: list[ProjectOut]


# --- datasets ----------------------------------------------------------------------------------


class DatasetIn(_In):
    name: str = Field(examples=["utrs"])


class VersionOut(_Out):
    id: str = Field(description="sha256 of the file's bytes")
    filename: str
    format: str
    size_bytes: int
    rows: int
    good_rows: int
    refused_rows: int
    created_at: datetime

    @classmethod
    def of(cls, row: DatasetVersion) -> Self:
        return cls._of_row(row)


class DatasetOut(_Out):
    id: str
    name: str
    created_at: datetime
    versions: int
    latest: VersionOut | None

    @classmethod
    def of(cls, row: Dataset, versions: list[DatasetVersion]) -> Self:
        latest = VersionOut.of(versions[-1]) if versions else None
        return cls._of_row(row, versions=len(versions), latest=latest)


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


class VersionList(BaseModel):
    dataset: str
    versions: list[VersionOut] = Field(description="oldest first")


class ProfileOut(VersionOut):
    columns: list[ColumnProfile] = Field(description="each column's detected role and values")
    roles: dict[str, str] = Field(description="the roles in use (detected, or as corrected)")
    preview: list[dict[str, str]] = Field(description="the first rows, as text")

    @classmethod
    def of(cls, row: DatasetVersion) -> Self:
        found = row.profile
        return cls._of_row(
            row,
            columns=[ColumnProfile.model_validate(c) for c in found.get("columns", [])],
            roles=dict(found.get("roles", {})),
            preview=list(found.get("preview", [])),
        )


class RefusedPage(BaseModel):
    total: int = Field(description="refused rows in the file")
    kept: int = Field(description="refused rows whose report is kept (the first 1,000)")
    offset: int
    limit: int
    rows: list[RefusedRow]

    @classmethod
    def of(cls, row: DatasetVersion, offset: int, limit: int) -> Self:
        kept = list(row.report.get("refused", []))
        page = [RefusedRow.model_validate(r) for r in kept[offset : offset + limit]]
        return cls(total=row.refused_rows, kept=len(kept), offset=offset, limit=limit, rows=page)


class RolesIn(_In):
    roles: dict[str, str] = Field(
        description="column -> role (sequence, number, category, split, id, image, text)",
        examples=[{"t0": "number"}],
    )


class RolesOut(BaseModel):
    roles: dict[str, str]


class SubsetIn(_In):
    name: str = Field(examples=["measured"])
    spec: SpecJson = Field(examples=[{"kind": "where", "column": "t0", "op": ">", "value": 100}])


class SubsetOut(_Out):
    name: str
    spec: dict[str, Any]
    created_at: datetime
    rows: int | None = Field(description="rows it selects in the version; null: see error")
    error: str | None = Field(description="why it selects no row in that version")

    @classmethod
    def of(cls, row: Subset, count: int | str) -> Self:
        counted = isinstance(count, int)
        return cls._of_row(row, rows=count if counted else None, error=None if counted else count)


class SubsetList(BaseModel):
    dataset: str
    version: str | None = Field(description="the version counted (null: no version yet)")
    subsets: list[SubsetOut]


# --- recipes and experiments --------------------------------------------------------------------


class RecipeOut(BaseModel):
    name: str
    reads: str = Field(description="the column role it reads: sequence, features or image")
    params: list[dict[str, Any]] = Field(description="declared hyper-parameters (Param.as_dict)")
    preset: list[dict[str, Any]] | None = Field(description="its network as a block stack")
    input_shape: list[int] | None = Field(description="what the block stack takes")


class RecipeList(BaseModel):
    recipes: list[RecipeOut]


class ExperimentIn(ExperimentRequest):  # the workspace's request, and a name
    model_config = ConfigDict(extra="forbid")
    name: str = Field(examples=["cuperus-cnn"])


def _all_optional(model: type[BaseModel], name: str, doc: str) -> type[_In]:
    """A request body ``name`` of ``model``'s fields, each optional (default null), with their
    descriptions and examples."""
    fields: dict[str, Any] = {}
    for field, info in model.model_fields.items():
        annotation: Any = info.annotation
        optional = Field(default=None, description=info.description, examples=info.examples)
        fields[field] = (annotation | None, optional)
    return create_model(name, __doc__=doc, __base__=_In, __module__=__name__, **fields)


if TYPE_CHECKING:  # to mypy, a request body; its fields are made at import
    ExperimentChanges = _In
else:
    ExperimentChanges = _all_optional(
        ExperimentRequest,
        "ExperimentChanges",
        "Settings to change in a clone (``params`` are merged into the original's).",
    )


class CloneIn(_In):
    name: str = Field(examples=["cuperus-cnn-lr"])
    changes: ExperimentChanges = Field(default_factory=ExperimentChanges)


class ExperimentOut(_Out):
    id: str
    name: str
    dataset: str
    dataset_version: str
    target: str
    inputs: dict[str, Any]
    train_subset: str
    val_subset: str
    test_subset: str | None
    normalise_on: str | None
    positive: str | None
    seed: int
    recipe: str
    params: dict[str, Any]
    blocks: list[dict[str, Any]] | None
    cloned_from: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Experiment, dataset: str) -> Self:
        return cls._of_row(row, dataset=dataset)


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


# --- runs --------------------------------------------------------------------------------------


class RunIn(_In):
    engine: Engine = Field(default="local", description="local: a worker here; ray: a cluster")
    epochs: int | None = Field(default=None, ge=1, description="epochs planned (for the ETA)")
    init_from_run: str | None = Field(
        default=None, description="a finished run of this project whose weights to start from"
    )


class ContinueIn(_In):
    experiment: str | None = Field(
        default=None, description="name or id of the experiment to run (default: the run's own)"
    )
    engine: Engine = "local"
    epochs: int | None = Field(default=None, ge=1)


class RunOut(_Out):
    id: str
    experiment_id: str
    experiment: str
    number: int
    status: str
    engine: str
    init_from_run: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stop_requested: bool
    error: str | None
    epochs_planned: int | None
    best_epoch: int | None
    bundle: str | None = Field(description="the trained bundle in the runs store, once finished")
    metrics: dict[str, Any] | None
    headline: dict[str, Any] | None

    @classmethod
    def of(cls, row: Run, experiment: str) -> Self:
        return cls._of_row(row, experiment=experiment, status=row.status.value)


class EpochOut(_Out):
    epoch: int
    train_loss: float | None
    val_loss: float | None
    metrics: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, row: RunEpoch) -> Self:
        return cls._of_row(row)


class LogOut(_Out):
    seq: int
    at: datetime
    line: str

    @classmethod
    def of(cls, row: RunLog) -> Self:
        return cls._of_row(row)


class RunDetail(RunOut):
    epochs: list[EpochOut]
    logs: list[LogOut] = Field(description="log lines after ?after_log= (default: all)")


class RunList(BaseModel):
    runs: list[RunOut]


class DeployIn(_In):
    model: str = Field(description="the served model's name", examples=["my-utr"])
    alias: str | None = Field(default=None, examples=["production"])


class Calls(BaseModel):
    """How to call a deployed model, as commands to paste."""

    curl: str = Field(description="REST domain API")
    python: str = Field(description="Python with requests, the same call")
    oip_curl: str = Field(description="Open Inference Protocol v2 over REST")
    grpc_python: str | None = Field(description="OIP over gRPC with tritonclient (null: no gRPC)")


class DeployOut(_Out):
    project: str
    run: str
    model: str
    version: int
    alias: str | None
    at: datetime
    served: bool = Field(description="the server serves it now")
    load_error: str | None = Field(description="why the server could not load it")
    calls: Calls

    @classmethod
    def of(
        cls, row: Deployment, project: str, served: bool, error: str | None, calls: Calls
    ) -> Self:
        return cls._of_row(
            row, project=project, run=row.run_id, served=served, load_error=error, calls=calls
        )
