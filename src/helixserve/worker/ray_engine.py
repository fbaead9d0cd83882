"""``helixserve worker --engine ray``: the workspace's Ray runs, each trained as a Ray task.

Contract:
- :class:`RayWorker` connects to the Ray cluster in ``address`` (``None``: ``RAY_ADDRESS``, else a
  Ray instance started on this machine), then repeats: sweep dead runs, claim queued runs of
  engine ``ray`` while fewer are in flight than the cluster has CPUs, and submit each as a Ray
  task (:func:`train_on_ray`) that asks for :func:`resources`; Ray places it on a node that has
  them. The task runs :func:`~helixserve.worker.run.train_run` inside the Ray worker process: it
  reads the dataset, beats, records epochs, checkpoints and publishes from there, exactly as a
  local worker does, so the cluster's nodes need the workspace database and store
  (PostgreSQL and S3, or SQLite and a folder on one machine) and ``helixserve[train]``.
- While a task is in flight this process also beats for its run (a task waiting for a node is
  not swept). A task that dies (its node or process killed) is not retried
  (``max_retries=0``): the error goes to the run's log and the run, no longer beaten for, is swept
  ``interrupted`` and can be resumed. :meth:`RayWorker.run` returns the runs' endings, counted.
- ``once``: claim at most one run, wait for it, return. :meth:`RayWorker.shut_down` stops
  claiming and asks each run in flight to stop (it is marked ``stopped`` after its epoch, with
  its checkpoint), then waits for the tasks to end. Ray is imported only here (extra ``ray``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from helixserve.errors import DatabaseUnavailable, HelixError, RunStateConflict
from helixserve.params.declare import declarations
from helixserve.params.recipes import DECLARED
from helixserve.settings import Settings
from helixserve.worker.local import POLL_S, default_name
from helixserve.worker.run import train_run
from helixserve.workspace import runs
from helixserve.workspace.experiments import get_experiment
from helixserve.workspace.space import Workspace

log = logging.getLogger("helixserve.worker")


def _ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - optional extra
    except ImportError:
        raise HelixError(
            "helixserve worker --engine ray needs the ray extra: pip install 'helixserve[ray]'."
        ) from None
    return ray


def resources(recipe: str, params: Mapping[str, Any], cluster_gpus: float) -> tuple[float, float]:
    """``(num_cpus, num_gpus)`` a run asks Ray for: one CPU; one GPU when its ``device`` is
    ``cuda``, or when a neural recipe leaves the device open and the cluster has GPUs."""
    neural = "device" in {d.name for d in declarations(DECLARED[recipe])}
    wants = params.get("device")
    gpu = wants == "cuda" or (neural and wants is None and cluster_gpus > 0)
    return 1.0, 1.0 if gpu else 0.0


def train_on_ray(settings: Settings, run_id: str, worker: str, heartbeat_every: float) -> str:
    """The Ray task: train one claimed run in this Ray worker process."""
    space = Workspace.from_settings(settings)
    try:
        with space.db.session() as session:
            runs.log(session, run_id, f"on Ray, process {os.getpid()} of {os.uname().nodename}")
        return train_run(space, run_id, worker, heartbeat_every=heartbeat_every)
    finally:
        space.db.close()


class RayWorker:
    """Hands the workspace's Ray runs to a Ray cluster; see the module contract."""

    engine = "ray"

    def __init__(
        self,
        space: Workspace,
        settings: Settings,
        name: str | None = None,
        *,
        poll_s: float = POLL_S,
        heartbeat_every: float = runs.HEARTBEAT_EVERY_S,
        address: str | None = None,
    ) -> None:
        self.space, self.settings, self.name = space, settings, name or default_name()
        self.poll_s, self.heartbeat_every, self.address = poll_s, heartbeat_every, address
        self.shutdown = threading.Event()
        self.in_flight: dict[Any, str] = {}  # Ray object ref -> run id

    def shut_down(self) -> None:
        """Stop claiming; ask the runs in flight to stop after their epoch."""
        self.shutdown.set()

    def run(self, *, once: bool = False) -> Counter[str]:
        """Claim, submit and collect until shut down (or one run, with ``once``)."""
        ray = _ray()
        if not ray.is_initialized():
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        ended: Counter[str] = Counter()
        claimed, stopping = 0, False
        while True:
            if not self.shutdown.is_set() and not (once and claimed):
                claimed += self._fill(ray, 1 if once else None)
            if self.shutdown.is_set() and not stopping:
                stopping = self._stop_all(self.in_flight.values())
            if not self.in_flight:
                if once or self.shutdown.is_set():
                    return ended
                self.shutdown.wait(self.poll_s)
                continue
            timeout = min(self.poll_s, self.heartbeat_every)
            ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
            for ref in ready:
                ended[self._collect(ray, ref, self.in_flight.pop(ref))] += 1
            self._beat(list(self.in_flight.values()))

    def _fill(self, ray: Any, most: int | None) -> int:
        """Claim and submit runs while the cluster has CPUs for them; how many."""
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        gpus = float(ray.cluster_resources().get("GPU", 0))
        submitted = 0
        while len(self.in_flight) < slots and (most is None or submitted < most):
            try:
                with self.space.db.session() as session:
                    for run_id in runs.sweep(session):
                        log.warning("run %s: its worker stopped beating; interrupted", run_id)
                claimed = runs.claim(self.space.db, self.name, engine=self.engine)
                if claimed is None:
                    break
                with self.space.db.session() as session:
                    experiment = get_experiment(session, claimed.experiment_id)
                    cpus, gpu = resources(experiment.recipe, experiment.params, gpus)
                    runs.log(
                        session,
                        claimed.id,
                        f"submitted to Ray by worker {self.name}: asks for {cpus:g} CPU, "
                        f"{gpu:g} GPU",
                    )
            except DatabaseUnavailable as err:
                log.warning("worker %s: the database cannot be reached (%s)", self.name, err)
                break
            task = ray.remote(train_on_ray).options(
                num_cpus=cpus, num_gpus=gpu, max_retries=0, name=f"helixserve-run-{claimed.id}"
            )
            ref = task.remote(self.settings, claimed.id, self.name, self.heartbeat_every)
            self.in_flight[ref] = claimed.id
            submitted += 1
        return submitted

    def _collect(self, ray: Any, ref: Any, run_id: str) -> str:
        """A finished task's ending; a task that died is logged on its run (``lost``)."""
        try:
            ending: str = ray.get(ref)
        except Exception as err:
            short = str(err).strip().splitlines()[-1][:300] if str(err).strip() else repr(err)
            log.warning("run %s: the Ray task ended with an error: %s", run_id, short)
            self._log(run_id, f"the Ray task ended with an error ({type(err).__name__}: {short})")
            return "lost"
        log.info("worker %s: run %s %s", self.name, run_id, ending)
        return ending

    def _beat(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            try:
                with self.space.db.session() as session:
                    runs.heartbeat(session, run_id, worker=self.name)
            except (RunStateConflict, DatabaseUnavailable) as err:
                log.debug("run %s: no heartbeat from the Ray worker (%s)", run_id, err)

    def _stop_all(self, run_ids: Iterable[str]) -> bool:
        for run_id in list(run_ids):
            try:
                with self.space.db.session() as session:
                    runs.log(session, run_id, f"the Ray worker {self.name} is shutting down")
                    runs.request_stop(session, run_id)
            except (RunStateConflict, DatabaseUnavailable) as err:
                log.warning("run %s: could not ask it to stop (%s)", run_id, err)
        return True

    def _log(self, run_id: str, line: str) -> None:
        try:
            with self.space.db.session() as session:
                runs.log(session, run_id, line)
        except DatabaseUnavailable:
            log.warning("run %s: %s", run_id, line)
