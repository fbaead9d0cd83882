"""``helixserve worker``: train the workspace's queued runs (this machine, or a Ray cluster).

Contract:
- The workspace is the one the settings name (``HELIXSERVE_DATABASE_URL``,
  ``HELIXSERVE_WORKSPACE_STORE``): the same as the web app's and the CLI's. The database is
  migrated first (safe to repeat).
- ``--engine local`` (default) trains runs of engine ``local`` in this process, one at a time
  (:class:`~helixserve.worker.local.LocalWorker`); ``--engine ray`` hands runs of engine ``ray``
  to the Ray cluster in ``RAY_ADDRESS`` (else a Ray instance started here), one task per run
  (:class:`~helixserve.worker.ray_engine.RayWorker`).
- ``--once`` trains at most one run and exits (0 also when none was queued); otherwise the worker
  polls every ``--poll`` seconds until SIGTERM or Ctrl+C, which stop it gracefully: a run in
  training stops after its epoch and is marked stopped (resumable from its checkpoint).
- The training layer is imported only when the command runs: without the ``train`` extra the
  command says how to install it (``Error: ...``, exit 1). Progress goes to stderr as log lines;
  each run's own log, epochs and result go to the workspace.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import signal
from types import FrameType
from typing import Annotated, Any, Literal

import typer

from helixserve.cli.options import examples
from helixserve.errors import HelixError
from helixserve.settings import load_settings

WORKER_EXAMPLES = examples(
    ("Train queued runs on this machine until stopped (Ctrl+C or SIGTERM)", "worker"),
    ("Train one queued run, then exit", "worker --once"),
    (
        "Hand the queued Ray runs to the cluster that RAY_ADDRESS names",
        "worker --engine ray --name lab-cluster",
    ),
)


def _modules(engine: str) -> Any:
    module = "helixserve.worker.ray_engine" if engine == "ray" else "helixserve.worker.local"
    try:
        if importlib.util.find_spec("torch") is None:  # the local worker imports it per run
            raise ModuleNotFoundError("no torch", name="torch")
        return importlib.import_module(module)  # the train (and ray) extras: imported only here
    except ImportError as err:
        raise HelixError(
            f"the worker trains models, which needs the train extra ({err.name} is not "
            "installed): pip install 'helixserve[train]'."
        ) from None


def worker(
    engine: Annotated[
        Literal["local", "ray"],
        typer.Option(help="Train here, or hand each run to a Ray cluster (RAY_ADDRESS)."),
    ] = "local",
    once: Annotated[bool, typer.Option("--once", help="Train at most one run, then exit.")] = False,
    name: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Name shown on the runs it trains (default host:pid)."),
    ] = None,
    poll: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=0.05, help="Seconds between looks at the queue."),
    ] = 2.0,
) -> None:
    """Train the workspace's queued runs: claim one, train it, publish it, repeat."""
    from helixserve.workspace.db import shown as shown_url  # noqa: PLC0415 - keeps --help fast
    from helixserve.workspace.space import Workspace  # noqa: PLC0415

    chosen = _modules(engine)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    space = Workspace.from_settings(settings).open()
    if engine == "ray":
        trainer = chosen.RayWorker(space, settings, name, poll_s=poll)
    else:
        trainer = chosen.LocalWorker(space, name, poll_s=poll)

    def stop(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("helixserve.worker").info("stopping (signal %d)", signum)
        trainer.shut_down()

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    typer.echo(
        f"helixserve worker {trainer.name} ({engine}), workspace "
        f"{shown_url(settings.database_url)}",
        err=True,
    )
    try:
        ended = trainer.run(once=once)
    finally:
        space.db.close()
        for sig, handler in before.items():
            signal.signal(sig, handler)
    shown = ", ".join(f"{count} {ending}" for ending, count in sorted(ended.items()))
    typer.echo(f"helixserve worker {trainer.name}: {shown or 'no run trained'}", err=True)
