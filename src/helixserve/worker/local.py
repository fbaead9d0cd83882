"""The worker loop on one machine: claim the workspace's queued runs and train them, one at a time.

Contract:
- :class:`LocalWorker` repeats: sweep dead runs (:func:`~helixserve.workspace.runs.sweep`, as the
  web app does), claim the oldest queued run of engine ``local``
  (:func:`~helixserve.workspace.runs.claim`, atomic: two workers never get the same run), train
  it in this process (:func:`~helixserve.worker.run.train_run`). With nothing queued it waits
  ``poll_s`` seconds. :meth:`LocalWorker.run` returns how many runs ended each way
  (``finished``, ``failed``, ``stopped``, ``lost``).
- ``once``: claim at most one run, train it, return (at once when nothing is queued).
- The training layer (torch) is imported when the first run is claimed: an idle worker (the one
  ``helixserve serve`` starts) starts in a fraction of a second and stays small.
- :meth:`LocalWorker.shut_down` (the CLI calls it on SIGTERM and Ctrl+C) stops claiming; a run in
  training stops after its current epoch and is marked ``stopped`` with its checkpoint, so Resume
  goes on from there; then :meth:`run` returns.
- A database that cannot be reached while polling is logged and tried again after ``poll_s``;
  the worker does not exit.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import Counter

from helixserve.errors import DatabaseUnavailable
from helixserve.workspace import runs
from helixserve.workspace.space import Workspace

log = logging.getLogger("helixserve.worker")
POLL_S = 2.0


def default_name() -> str:
    """``<host>:<pid>``: names the worker in each run it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LocalWorker:
    """Claims and trains runs here; see the module contract."""

    engine = "local"

    def __init__(
        self,
        space: Workspace,
        name: str | None = None,
        *,
        poll_s: float = POLL_S,
        heartbeat_every: float = runs.HEARTBEAT_EVERY_S,
    ) -> None:
        self.space, self.name = space, name or default_name()
        self.poll_s, self.heartbeat_every = poll_s, heartbeat_every
        self.shutdown = threading.Event()

    def shut_down(self) -> None:
        """Stop claiming; a run in training stops after its epoch (see the module contract)."""
        self.shutdown.set()

    def run(self, *, once: bool = False) -> Counter[str]:
        """Claim and train until shut down (or one run, with ``once``)."""
        ended: Counter[str] = Counter()
        while not self.shutdown.is_set():
            run_id = self.next_run()
            if run_id is None:
                if once:
                    break
                self.shutdown.wait(self.poll_s)
                continue
            log.info("worker %s: training run %s", self.name, run_id)
            from helixserve.worker.run import train_run  # noqa: PLC0415 - torch loads with a run

            ending = train_run(
                self.space,
                run_id,
                self.name,
                shutdown=self.shutdown,
                heartbeat_every=self.heartbeat_every,
            )
            log.info("worker %s: run %s %s", self.name, run_id, ending)
            ended[ending] += 1
            if once:
                break
        return ended

    def next_run(self) -> str | None:
        """Sweep, then claim the oldest queued run of this engine; its id, or ``None``."""
        try:
            with self.space.db.session() as session:
                for run_id in runs.sweep(session):
                    log.warning("run %s: its worker stopped beating; marked interrupted", run_id)
            claimed = runs.claim(self.space.db, self.name, engine=self.engine)
        except DatabaseUnavailable as err:
            log.warning("worker %s: no database (%s); trying again", self.name, err)
            return None
        return None if claimed is None else claimed.id
