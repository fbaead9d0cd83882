"""Train one claimed run, from its dataset to a finished (or failed, or stopped) row in the queue.

Contract:
- :func:`train_run` takes a run this worker claimed (``running``, ``worker`` = ``worker``) and:
  prepares the data (:func:`~helixserve.worker.prepare.prepare`) in a fresh local work folder
  (``<workspace cache>/runs/<run id>``, removed at the end); when the run has a checkpoint in the
  workspace store (a stopped or interrupted run that was resumed), downloads it and continues from
  it (the training layer's resume, which checks the fingerprint: same data and options); trains
  through the same function as ``helixserve train``
  (:func:`helixserve.training.cli_support.run`) with an
  :class:`~helixserve.worker.progress.EpochReporter` as ``on_epoch``, beating every
  ``heartbeat_every`` seconds meanwhile (:class:`~helixserve.worker.progress.Heartbeat`);
  publishes the bundle into the runs store as ``run-<id>`` and calls
  :func:`~helixserve.workspace.runs.finish` with its ``name@version``, the test metrics, the
  headline and the best epoch. Log lines go to the run's log: data summary, notes, device, resume,
  refused rows, epochs, each step after the epochs as it starts and ends (the
  training layer's :func:`~helixserve.training.loop.stage`: a blend, the test scores, the
  export), export and parity, the published bundle.
- Device: a neural recipe whose parameters do not name ``device`` trains on ``cuda`` when
  ``torch.cuda.is_available()``, else on the CPU; a ``device`` the person set is kept.
- Endings, returned as :data:`Ending`: ``finished``; ``stopped`` (a stop request, or ``shutdown``
  set: :func:`~helixserve.workspace.runs.mark_stopped` after the epoch, the checkpoint kept, so
  Resume goes on from it); ``failed`` (:func:`~helixserve.workspace.runs.fail` with the error's
  message; an unexpected exception is logged with its traceback on stderr and failed as ``the
  worker failed unexpectedly: <type>: <message>``; a loss that is not finite fails as ``training
  diverged at epoch N (loss nan); lower lr ...``); ``lost`` (the run stopped being this worker's,
  e.g. swept after a stall: its row is left alone). The stored checkpoint is removed once the run
  finished or failed.
"""

from __future__ import annotations

import logging
import shutil
import threading
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from sqlalchemy.orm import Session

from helixserve.errors import DatabaseUnavailable, HelixError, RunStateConflict
from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED
from helixserve.training.checkpoint import read_meta
from helixserve.training.cli_support import run as train_and_publish
from helixserve.training.loop import stages_to
from helixserve.training.publish import Outcome
from helixserve.worker.prepare import Prepared, prepare
from helixserve.worker.progress import (
    CHECKPOINT,
    Checkpoints,
    EpochReporter,
    Heartbeat,
    RunLost,
    StopTraining,
)
from helixserve.workspace import runs
from helixserve.workspace.models import Run
from helixserve.workspace.space import Workspace

log = logging.getLogger("helixserve.worker")
Ending = Literal["finished", "failed", "stopped", "lost"]


def train_run(
    space: Workspace,
    run_id: str,
    worker: str,
    *,
    shutdown: threading.Event | None = None,
    heartbeat_every: float = runs.HEARTBEAT_EVERY_S,
) -> Ending:
    """Train the claimed run ``run_id``; see the module contract."""
    work_dir = space.cache_dir / "runs" / run_id
    shutil.rmtree(work_dir, ignore_errors=True)
    beat = Heartbeat(space.db, run_id, worker, heartbeat_every)
    beat.start()
    checkpoints = Checkpoints(space.blobs.location, run_id)
    try:
        outcome = _train(space, run_id, worker, work_dir, beat, checkpoints, shutdown)
    except StopTraining as stop:
        return _stopped(space, run_id, str(stop), checkpoints)
    except (RunLost, RunStateConflict) as err:
        log.warning("run %s is no longer this worker's; left as it is (%s)", run_id, err)
        return "lost"
    except HelixError as err:
        return _failed(space, run_id, str(err), checkpoints)
    except Exception as err:
        log.exception("run %s failed unexpectedly", run_id)
        message = f"the worker failed unexpectedly: {type(err).__name__}: {err}"
        return _failed(space, run_id, message, checkpoints)
    finally:
        beat.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    return _finished(space, run_id, outcome, checkpoints)


def _train(
    space: Workspace,
    run_id: str,
    worker: str,
    work_dir: Path,
    beat: Heartbeat,
    checkpoints: Checkpoints,
    shutdown: threading.Event | None,
) -> Outcome:
    with space.db.session() as session:
        run = runs.get_run(session, run_id)
        prepared = prepare(session, space, run, work_dir)
        _log_data(session, run, prepared, worker)
        had_checkpoint = run.checkpoint is not None
    options = prepared.options
    options.work_dir = work_dir
    local = work_dir / CHECKPOINT
    options.resume = had_checkpoint and checkpoints.download(local)
    device = _device(options.recipe, options.params)
    where = device or str(options.params.get("device", "cpu"))
    _note(space, run_id, _start_line(options.resume, local, where, had_checkpoint))
    reporter = EpochReporter(
        space.db,
        run_id,
        worker,
        beat=beat,
        checkpoints=checkpoints,
        local_checkpoint=local,
        planned=options.params.get("epochs"),
        shutdown=shutdown or threading.Event(),
    )
    with stages_to(partial(_stage_note, space, run_id)):
        return train_and_publish(options, space.runs, on_epoch=reporter, device=device)


def _log_data(session: Session, run: Run, prepared: Prepared, worker: str) -> None:
    options, sizes = prepared.options, prepared.sizes
    epochs = options.params.get("epochs")
    if epochs is not None and run.epochs_planned is None:
        run.epochs_planned = int(epochs)
    runs.log(session, run.id, f"claimed by worker {worker}")
    runs.log(
        session,
        run.id,
        f"data: {sizes['T']:,} training rows, {sizes['V']:,} validation rows, "
        f"{sizes['test']:,} test rows; {sizes['left out']:,} good rows in none of the "
        f"experiment's subsets left out; recipe {options.recipe}"
        + (f", from the weights of {options.init_from}" if options.init_from else ""),
    )
    for note in prepared.notes:
        runs.log(session, run.id, note)


def _start_line(resumed: bool, local: Path, device: str, had: bool) -> str:
    where = f"training on {device}"
    if resumed:
        return f"{where}; resuming from the checkpoint of epoch {int(read_meta(local)['epoch'])}"
    if had:
        return f"{where}; the run's checkpoint is gone, so training starts from epoch 1"
    return where


def _device(recipe: str, params: dict[str, object]) -> str | None:
    """``cuda`` for a neural recipe whose parameters leave the device open, when a GPU is here."""
    declared = {d.name for d in declarations(DECLARED[recipe])}
    if "device" not in declared or "device" in params:
        return None
    return "cuda" if torch.cuda.is_available() else "cpu"


def _note(space: Workspace, run_id: str, line: str) -> None:
    with space.db.session() as session:
        runs.log(session, run_id, line)


def _stage_note(space: Workspace, run_id: str, line: str) -> None:
    """A step after the epochs (blend, test scores, export) in the run's log, as it starts and
    ends; a database that cannot be reached loses the line, not the run."""
    try:
        _note(space, run_id, line)
    except DatabaseUnavailable as err:
        log.warning("run %s: %s (not logged: %s)", run_id, line, err)


def _finished(space: Workspace, run_id: str, outcome: Outcome, checkpoints: Checkpoints) -> Ending:
    manifest = outcome.manifest
    bundle = f"{manifest.name}@{manifest.version}"
    headline = manifest.headline
    try:
        with space.db.session() as session:
            for line in _outcome_lines(outcome, bundle):
                runs.log(session, run_id, line)
            runs.finish(
                session,
                run_id,
                bundle,
                manifest.metrics,
                headline.model_dump(mode="json") if headline is not None else {},
                best_epoch=outcome.history.best_epoch if outcome.history is not None else None,
            )
    except RunStateConflict as err:
        log.warning("run %s: trained, but %s", run_id, err)
        return "lost"
    checkpoints.remove()
    return "finished"


def _outcome_lines(outcome: Outcome, bundle: str) -> list[str]:
    lines = []
    if outcome.refused:
        lines.append(f"{outcome.refused:,} rows refused by the recipe's validation; the first:")
        lines += [f"refused: {item.error}" for item in outcome.refused_examples]
    lines.append(
        f"exported to ONNX; parity with the trained model {outcome.parity:.2g} (largest "
        "difference on the test rows)"
    )
    headline = outcome.manifest.headline
    figure = ""
    if headline is not None and headline.metric in outcome.manifest.metrics:
        figure = f"; {headline.metric} {outcome.manifest.metrics[headline.metric]:.4g}"
    lines.append(f"published {bundle} in {outcome.seconds:.1f} s{figure}")
    return lines


def _stopped(space: Workspace, run_id: str, why: str, checkpoints: Checkpoints) -> Ending:
    try:
        with space.db.session() as session:
            runs.log(session, run_id, f"{why}; resume the run to go on from its checkpoint")
            runs.mark_stopped(session, run_id, checkpoint=checkpoints.uri)
    except RunStateConflict as err:
        log.warning("run %s: %s", run_id, err)
        return "lost"
    return "stopped"


def _failed(space: Workspace, run_id: str, message: str, checkpoints: Checkpoints) -> Ending:
    try:
        with space.db.session() as session:
            runs.log(session, run_id, f"failed: {message}")
            runs.fail(session, run_id, message)
    except RunStateConflict as err:
        log.warning("run %s: %s", run_id, err)
        return "lost"
    checkpoints.remove()
    return "failed"
