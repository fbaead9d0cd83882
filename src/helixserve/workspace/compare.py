"""Compare runs of one project: metrics side by side, curves, and what differs between them.

Contract: :func:`compare_runs` takes run ids of one project (each checked with
:func:`~helixserve.workspace.deploy.project_run`, at least one, at most :data:`MAX_RUNS`) and
returns a :class:`Comparison`: one :class:`RunSummary` per run in the order given (experiment,
number, status, recipe, dataset version, subsets, hyper-parameters, block count, test metrics,
headline, best epoch, each epoch's losses), the union of metric names, and ``differs``: the
settings whose values are not the same in every run (``recipe``, ``dataset_version``,
``train_subset``, ..., ``params.<name>``, ``blocks``), which the pages highlight. A parameter set
in one run and left to its recipe's default in another is shown (and compared) at that default,
named in the run's ``defaults``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from helixserve.errors import RequestError
from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED
from helixserve.workspace.deploy import project_run
from helixserve.workspace.experiments import get_experiment
from helixserve.workspace.runs import epochs_since

MAX_RUNS = 12


class EpochPoint(BaseModel):
    epoch: int
    train_loss: float | None
    val_loss: float | None


class RunSummary(BaseModel):
    id: str
    experiment: str
    number: int
    status: str
    settings: dict[str, Any]
    metrics: dict[str, float]
    headline: dict[str, Any] | None
    best_epoch: int | None
    curve: list[EpochPoint]
    defaults: list[str] = []  # settings shown at the recipe's default (not set in the experiment)


class Comparison(BaseModel):
    runs: list[RunSummary]
    metric_names: list[str]
    differs: list[str]


def compare_runs(session: Session, project: str, run_ids: list[str]) -> Comparison:
    """See the module contract."""
    unique = list(dict.fromkeys(run_ids))
    if not unique or len(unique) > MAX_RUNS:
        raise RequestError(
            f"choose between 1 and {MAX_RUNS} runs to compare; got {len(unique)}.",
        )
    summaries = [_summary(session, project, run_id) for run_id in unique]
    _fill_defaults(summaries)
    names = sorted({name for s in summaries for name in s.metrics})
    keys = sorted({key for s in summaries for key in s.settings})
    differs = [k for k in keys if len({repr(s.settings.get(k)) for s in summaries}) > 1]
    return Comparison(runs=summaries, metric_names=names, differs=differs)


def _fill_defaults(summaries: list[RunSummary]) -> None:
    """Each parameter one run sets, at its recipe's default in the runs that leave it out."""
    named = {key for s in summaries for key in s.settings if key.startswith("params.")}
    for summary in summaries:
        declared = {
            f"params.{d.name}": d.default
            for d in declarations(DECLARED[summary.settings["recipe"]])
        }
        for key in sorted(named - set(summary.settings)):
            if key in declared:
                summary.settings[key] = declared[key]
                summary.defaults.append(key)


def _summary(session: Session, project: str, run_id: str) -> RunSummary:
    run = project_run(session, project, run_id)
    experiment = get_experiment(session, run.experiment_id)
    settings: dict[str, Any] = {
        "recipe": experiment.recipe,
        "dataset_version": experiment.dataset_version[:12],
        "target": experiment.target,
        "positive": experiment.positive,
        "train_subset": experiment.train_subset,
        "val_subset": experiment.val_subset,
        "test_subset": experiment.test_subset,
        "seed": experiment.seed,
        "blocks": None if experiment.blocks is None else len(experiment.blocks),
        "init_from_run": run.init_from_run,
    }
    settings |= {f"params.{k}": v for k, v in sorted(experiment.params.items())}
    metrics = {k: float(v) for k, v in (run.metrics or {}).items() if _number(v)}
    curve = [
        EpochPoint(epoch=e.epoch, train_loss=e.train_loss, val_loss=e.val_loss)
        for e in epochs_since(session, run.id, 0)
    ]
    return RunSummary(
        id=run.id,
        experiment=experiment.name,
        number=run.number,
        status=run.status.value,
        settings=settings,
        metrics=metrics,
        headline=run.headline,
        best_epoch=run.best_epoch,
        curve=curve,
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
