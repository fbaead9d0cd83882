"""``helixserve serve`` and ``helixserve keys new``.

Contract:
- ``serve`` starts the HTTP server (uvicorn; domain API, OIP v2 REST, docs, metrics) and the gRPC
  server in each of ``--workers`` processes. Options override the matching ``HELIXSERVE_*``
  settings and are passed to the worker processes through the environment. With more than one
  worker, Prometheus metrics are shared through a temporary folder, each worker polls the store
  (``--reload-interval``), so a moved alias reaches all of them, and a reload in one of them (a
  deploy, ``/api/v1/admin/reload``) reloads them all within a second (a temporary signal file,
  :mod:`helixserve.serving.reload_signal`).
- SIGTERM stops a server gracefully (:mod:`helixserve.serving.drain`: 503 while draining,
  requests in flight finish) and the command then exits with code 0.
- Unless ``--no-worker`` or ``HELIXSERVE_WORKER=false``, ``serve`` also starts one worker process
  (``helixserve worker``, :mod:`helixserve.cli.worker`) that trains the workspace's queued runs;
  it is sent SIGTERM when the server stops (and, on Linux, when the server dies) and killed if it
  has not ended 10 s later. Without the ``train`` extra no worker starts: one line on stderr says
  how to get one.
- Secure by default: ``serve`` refuses to listen on an address beyond loopback while nobody can
  sign in (no user in the workspace) and no API key is configured, and says how to create the
  first admin (docs/security.md).
- Logs: JSON access lines (one per request) on stdout, everything else on stderr.
- ``keys new --scope predict|admin`` prints a new random API key and the hashed entry to add to
  ``HELIXSERVE_API_KEYS``; the key itself is shown once and stored nowhere.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import Annotated, Any, Literal

import typer
import uvicorn

from helixserve.cli.options import StoreOption, examples
from helixserve.errors import DatabaseError, HelixError
from helixserve.serving.auth import Scope, new_key
from helixserve.serving.drain import end_with_parent
from helixserve.settings import Settings, load_settings
from helixserve.store.configured import store_from_settings
from helixserve.workspace.accounts import has_users
from helixserve.workspace.db import Database

keys_app = typer.Typer(help="Make API keys (stored hashed in HELIXSERVE_API_KEYS).")


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging: logs to stderr (the JSON access lines go to stdout on their own,
    :mod:`helixserve.serving.access_log`)."""
    plain = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": plain},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "helixserve": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


SERVE_EXAMPLES = examples(
    ("Serve the store in HELIXSERVE_STORE on 127.0.0.1:8000", "serve"),
    (
        "Serve a folder to the network, with four processes",
        "serve --store ./models --host 0.0.0.0 --workers 4",
    ),
    ("Serve an S3 store with Ray Serve", "serve --store s3://lab-models --engine ray"),
)


def serve(
    store: StoreOption = None,
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="Address to bind (default: 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="HTTP port (default: 8000).")
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option(metavar="PORT", help="gRPC port (default: 8001; 0: off).")
    ] = None,
    workers: Annotated[
        str | None,
        typer.Option(metavar="N", help="Server processes (default: auto, one per usable CPU)."),
    ] = None,
    reload_interval: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Seconds between store polls (0: off).")
    ] = None,
    engine: Annotated[
        Literal["local", "ray"], typer.Option(help="Serve with uvicorn here, or with Ray Serve.")
    ] = "local",
    replicas: Annotated[
        int, typer.Option(metavar="N", help="Ray Serve replicas (engine ray).")
    ] = 2,
    autoscale: Annotated[
        str | None,
        typer.Option(metavar="MIN:MAX", help="Ray Serve autoscaling range (engine ray)."),
    ] = None,
    address: Annotated[
        str | None, typer.Option(metavar="ADDRESS", help="Ray cluster address (engine ray).")
    ] = None,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="Start no worker process (runs wait for one)."),
    ] = False,
) -> None:
    """Serve every model in the store: REST API, Open Inference Protocol v2 (REST + gRPC)."""
    given = {
        "STORE": store,
        "HOST": host,
        "PORT": port,
        "GRPC_PORT": grpc_port,
        "WORKERS": workers,
        "RELOAD_INTERVAL_S": reload_interval,
    }
    for name, value in given.items():
        if value is not None:
            os.environ[f"HELIXSERVE_{name}"] = str(value)
    settings = load_settings()
    store_from_settings(settings)  # a bad store URI fails here, with a clear message
    check_exposure(settings)
    worker = None if no_worker else start_worker(settings)
    try:
        _serve(settings, engine, replicas, autoscale, address)
    finally:
        stop_worker(worker)


def _serve(
    settings: Settings, engine: str, replicas: int, autoscale: str | None, address: str | None
) -> None:
    if engine == "ray":
        _serve_on_ray(settings, replicas, autoscale, address)
        return
    workers = settings.server_workers()
    if workers > 1 and settings.session_secret is None:  # one secret for all workers
        os.environ["HELIXSERVE_SESSION_SECRET"] = secrets.token_urlsafe(32)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="helixserve-metrics-")
    made = []  # temporary folders the server processes share, removed at exit
    if settings.jobs_dir is None:  # one folder of scored files for every server process
        made.append(tempfile.mkdtemp(prefix="helixserve-jobs-"))
        os.environ["HELIXSERVE_JOBS_DIR"] = made[-1]
    if workers > 1 and settings.reload_signal is None:  # a reload in one reloads them all
        made.append(tempfile.mkdtemp(prefix="helixserve-reload-"))
        os.environ["HELIXSERVE_RELOAD_SIGNAL"] = os.path.join(made[-1], "reload")
    typer.echo(
        f"helixserve: http://{settings.host}:{settings.port} (docs /docs), gRPC "
        f"{settings.host}:{settings.grpc_port if settings.grpc_port else 'off'}, "
        f"store {settings.store}" + (" over the pretrained models" if settings.pretrained else ""),
        err=True,
    )
    signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.run(
            "helixserve.serving.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=log_config(settings.log_level),
            access_log=False,
            server_header=False,
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=math.ceil(settings.request_timeout_s) + 5,
        )
    except OSError as err:
        raise HelixError(f"cannot serve on {settings.host}:{settings.port}: {err}") from None
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


OPEN_REFUSED = (
    "helixserve will not listen on {host}: nobody can sign in (no user) and no API key is "
    "configured, so anyone who reaches it could use and change everything. Create the first "
    "admin with `helixserve users add NAME --admin` (or set HELIXSERVE_API_KEYS: `helixserve "
    "keys new --scope admin`) and start again, or listen on 127.0.0.1."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse an open server beyond loopback (see the module contract)."""
    if is_loopback(settings.host) or settings.api_keys:
        return
    database = Database(settings.database_url)
    try:
        database.upgrade()
        with database.session() as session:
            if has_users(session):
                return
    except DatabaseError:
        pass  # no workspace to sign in to: as open as no user
    finally:
        database.close()
    raise HelixError(OPEN_REFUSED.format(host=settings.host))


NO_WORKER = (
    "helixserve: no worker started, so queued runs wait: training needs the train extra "
    "(pip install 'helixserve[train]'); or run `helixserve worker` where it is installed."
)
WORKER_GRACE_S = 10.0


def start_worker(settings: Settings) -> subprocess.Popen[bytes] | None:
    """The worker process ``serve`` starts (see the module contract), or ``None``."""
    if not settings.worker:
        return None
    if any(importlib.util.find_spec(name) is None for name in ("torch", "sklearn")):
        typer.echo(NO_WORKER, err=True)
        return None
    linux = sys.platform.startswith("linux")
    return subprocess.Popen(
        [sys.executable, "-m", "helixserve", "worker"],
        preexec_fn=end_with_parent if linux else None,  # noqa: PLW1509 - before any thread
    )


def stop_worker(worker: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the worker (its run stops after the epoch); kill it after the grace period."""
    if worker is None or worker.poll() is not None:
        return
    worker.terminate()
    try:
        worker.wait(WORKER_GRACE_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _stopped(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside uvicorn's own handling: before it serves, or re-raised by uvicorn after
    its graceful shutdown. Either way the server stopped as asked: exit 0."""
    raise SystemExit(0)


def _serve_on_ray(
    settings: Settings, replicas: int, autoscale: str | None, address: str | None
) -> None:
    from helixserve.serving.ray_serve import deploy, parse_autoscale  # noqa: PLC0415 - ray extra

    scale = parse_autoscale(autoscale) if autoscale else None
    deploy(settings, replicas=replicas, autoscale=scale, address=address)
    typer.echo(
        f"helixserve on Ray Serve: http://{settings.host}:{settings.port} (Ctrl+C stops)", err=True
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve  # noqa: PLC0415

        serve.shutdown()  # type: ignore[no-untyped-call]


KEYS_EXAMPLES = examples(
    ("A key that may predict", "keys new"),
    ("A key that may also manage models", "keys new --scope admin"),
)


@keys_app.command("new", epilog=KEYS_EXAMPLES)
def keys_new(
    scope: Annotated[
        Scope, typer.Option(help="What the key may do: predict, or everything (admin).")
    ] = "predict",
) -> None:
    """Print a new API key and the hashed entry for HELIXSERVE_API_KEYS."""
    key, entry = new_key(scope)
    typer.echo(f"key:   {key}\nentry: {entry}")
    typer.echo(
        "Give the key to the client (send it as 'Authorization: Bearer <key>'); add the entry "
        "to HELIXSERVE_API_KEYS (comma-separated). The key is not stored anywhere.",
        err=True,
    )
