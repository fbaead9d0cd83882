"""What a run tells the workspace while it trains: heartbeats, epochs, checkpoints, when to stop.

Contract:
- :class:`Heartbeat` is a daemon thread that calls :func:`~helixserve.workspace.runs.heartbeat`
  for one run every ``every`` seconds (5 s: :data:`~helixserve.workspace.runs.HEARTBEAT_EVERY_S`)
  in its own session. A ``stop_requested`` answer sets :attr:`Heartbeat.stop_requested`; a run
  that is no longer this worker's (swept, taken over) sets :attr:`Heartbeat.lost` and ends the
  thread; a database that cannot be reached is logged and tried again at the next beat.
- :class:`Checkpoints` keeps a run's training checkpoint where every host that shares the
  workspace store can read it: ``<workspace store>/checkpoints/<run id>/checkpoint.npz``, through
  the store's fsspec layer (a folder or S3; each upload replaces the object atomically).
- :class:`EpochReporter` is the ``on_epoch`` callback handed to the training layer. At the end of
  epoch N (1-based, after the loop wrote that epoch's checkpoint locally) it, in one transaction,
  beats, records the epoch (train and validation loss, ``at`` = when the epoch ended; metrics
  ``best_epoch`` and ``seconds``, the epoch's wall time, for the first epoch of an attempt
  including loading the data) and logs a line; then it uploads the
  checkpoint. So the live curve has the point as soon as the transaction commits, and a crash
  before the upload resumes from epoch N - 1 and records epoch N again. Then it ends training by
  raising: :class:`TrainingDiverged` for a loss that is not finite (before recording it),
  :class:`RunLost` when the run is no longer this worker's, :class:`StopTraining` when a stop was
  requested (the heartbeat's answer) or the worker is shutting down (``shutdown`` set).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from datetime import datetime
from pathlib import Path

from helixserve.errors import DatabaseUnavailable, HelixError, RunStateConflict
from helixserve.store.fs import Location, translating
from helixserve.training.loop import History
from helixserve.workspace import runs
from helixserve.workspace.db import Database
from helixserve.workspace.models import utcnow

log = logging.getLogger("helixserve.worker")
CHECKPOINT = "checkpoint.npz"


class TrainingDiverged(HelixError):
    """A loss became NaN or infinite: training cannot go on."""


class RunLost(Exception):
    """The run is no longer this worker's (swept as interrupted, or claimed by another)."""


class StopTraining(Exception):
    """Training ends after this epoch; ``str()`` says why (for the run's log)."""


class Heartbeat(threading.Thread):
    """Beats for one run until :meth:`close`; see the module contract."""

    def __init__(self, db: Database, run_id: str, worker: str, every: float) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.db, self.run_id, self.worker, self.every = db, run_id, worker, every
        self.stop_requested = threading.Event()
        self.lost = threading.Event()
        self._closed = threading.Event()

    def run(self) -> None:
        while not self._closed.wait(self.every):
            try:
                with self.db.session() as session:
                    if runs.heartbeat(session, self.run_id, worker=self.worker):
                        self.stop_requested.set()
            except RunStateConflict as err:
                log.warning("run %s: %s", self.run_id, err)
                self.lost.set()
                return
            except DatabaseUnavailable as err:
                log.warning("run %s: heartbeat failed, trying again: %s", self.run_id, err)

    def close(self) -> None:
        """Stop beating (the run's state is the caller's to change)."""
        self._closed.set()
        if self.is_alive():
            self.join()


class Checkpoints:
    """A run's checkpoint in the workspace store; see the module contract."""

    def __init__(self, location: Location, run_id: str) -> None:
        self.location = location
        self.path = location.path("checkpoints", run_id, CHECKPOINT)
        self.uri = f"{location.uri}/checkpoints/{run_id}/{CHECKPOINT}"

    def upload(self, local: Path) -> None:
        """Replace the stored checkpoint with the file ``local``."""
        with translating("save the run's checkpoint", self.location):
            self.location.write(self.path, local.read_bytes())

    def download(self, local: Path) -> bool:
        """Copy the stored checkpoint to ``local``; ``False`` when there is none."""
        with translating("read the run's checkpoint", self.location):
            try:
                data = self.location.read(self.path)
            except FileNotFoundError:
                return False
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        return True

    def remove(self) -> None:
        """Delete the stored checkpoint (a finished or failed run needs it no more)."""
        with (
            translating("remove the run's checkpoint", self.location),
            contextlib.suppress(FileNotFoundError),
        ):
            self.location.fs.rm_file(self.path)


class EpochReporter:
    """The training layer's ``on_epoch`` for one run; see the module contract."""

    def __init__(
        self,
        db: Database,
        run_id: str,
        worker: str,
        *,
        beat: Heartbeat,
        checkpoints: Checkpoints,
        local_checkpoint: Path,
        planned: int | None,
        shutdown: threading.Event,
    ) -> None:
        self.db, self.run_id, self.worker = db, run_id, worker
        self.beat, self.checkpoints, self.local = beat, checkpoints, local_checkpoint
        self.planned, self.shutdown = planned, shutdown
        self.last = time.monotonic()

    def __call__(self, history: History) -> None:
        ended, now = utcnow(), time.monotonic()
        seconds, self.last = now - self.last, now
        epoch = len(history.train_loss)
        train, val = history.train_loss[-1], history.val_loss[-1]
        if not (math.isfinite(train) and math.isfinite(val)):
            bad = train if not math.isfinite(train) else val
            raise TrainingDiverged(
                f"training diverged at epoch {epoch} (loss {bad}); lower lr (the learning "
                "rate), e.g. by 10 times, and run it again."
            )
        self._record(history, epoch, seconds, ended)
        if self.local.is_file():
            self.checkpoints.upload(self.local)
        if self.beat.lost.is_set():
            raise RunLost(self.run_id)
        if self.beat.stop_requested.is_set():
            raise StopTraining(f"stopped as asked after epoch {epoch}")
        if self.shutdown.is_set():
            raise StopTraining(f"the worker was shut down; stopped after epoch {epoch}")

    def _record(self, history: History, epoch: int, seconds: float, ended: datetime) -> None:
        train, val = history.train_loss[-1], history.val_loss[-1]
        of = f"/{self.planned}" if self.planned else ""
        try:
            with self.db.session() as session:
                if runs.heartbeat(session, self.run_id, worker=self.worker):
                    self.beat.stop_requested.set()
                runs.record_epoch(
                    session,
                    self.run_id,
                    epoch,
                    train_loss=train,
                    val_loss=val,
                    metrics={"best_epoch": history.best_epoch, "seconds": round(seconds, 3)},
                    checkpoint=self.checkpoints.uri,
                    at=ended,
                )
                runs.log(
                    session,
                    self.run_id,
                    f"epoch {epoch}{of}: train loss {train:.4g}, validation loss {val:.4g} "
                    f"(best: epoch {history.best_epoch}), {seconds:.1f} s",
                )
        except RunStateConflict as err:
            raise RunLost(str(err)) from None
