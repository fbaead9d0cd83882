"""Benchmark: what accounts cost (issue 17), and whether secrets are compared in a way that leaks.

Run with ``python -m benchmarks.bench_accounts`` (part of ``make bench``). Two parts:

1. **Timing of secret checks**, in-process on a SQLite workspace, medians of many calls:
   :func:`~helixserve.workspace.accounts.authenticate` for the right password, a wrong
   password, an unknown name and a disabled account (an unknown name must cost what a real
   password check costs, or the time tells who has an account); and
   :func:`~helixserve.workspace.keys.key_principal` for a valid key, a random wrong key and a
   wrong key sharing all but its last character with the valid one (keys are looked up by their
   sha256, so a near miss must cost what a far miss costs).
2. **The predict hot path with accounts on**, as CPU time per request in one process (two apps,
   the calls interleaved; little disturbed by other jobs on a shared machine), then over HTTP
   with ``wrk`` at concurrency 32, against
   two ``helixserve serve`` processes started with the README's defaults (workers, access log),
   measured interleaved: the open single-person server (no users, no keys) and a server with
   users, where a viewer's user key predicts with a model of their project, a user key predicts
   with a model of no project, and a service key (``HELIXSERVE_API_KEYS``) predicts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tests.support.server import publish_gc
from tests.support.worker_runs import add_dataset, open_space, queue

from benchmarks.bench_asgi_cpu import _lifespan, cpu_per_request
from benchmarks.bench_serving import BIN, DOMAIN_BODY, free_port, run_wrk, start, stop, wait_http
from helixserve.errors import HelixError
from helixserve.serving.app import create_app
from helixserve.serving.auth import new_key
from helixserve.settings import Settings
from helixserve.store import ModelStore
from helixserve.workspace import accounts
from helixserve.workspace.keys import create_key, key_principal
from helixserve.workspace.members import share
from helixserve.workspace.models import Deployment, Role, Run, RunStatus
from helixserve.workspace.projects import get_project

PASSWORD = "correct horse battery"


def medians_ms(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The median wall time in ms of each call, the calls interleaved round by round (so that
    the machine's drift hits all alike); a HelixError raised is part of the call."""
    times: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(rounds):
        for label, call in calls.items():
            start_at = time.perf_counter()
            with contextlib.suppress(HelixError):
                call()
            times[label].append(time.perf_counter() - start_at)
    return {label: statistics.median(found) * 1e3 for label, found in times.items()}


def secret_timing(scratch: Path, rounds: int) -> None:
    space = open_space(scratch / "timing", f"sqlite:///{scratch / 'timing.db'}")
    with space.db.session() as session:
        ana = accounts.add_user(session, "ana", PASSWORD)
        accounts.set_disabled(session, accounts.add_user(session, "dis", PASSWORD), True)
        key, _ = create_key(session, ana, "predict")
    near = key[:-1] + ("A" if key[-1] != "A" else "B")
    far = "hsu_" + secrets.token_urlsafe(32)
    with space.db.session() as session:
        sign_ins = medians_ms(
            {
                "right password": partial(accounts.authenticate, session, "ana", PASSWORD),
                "wrong password": partial(accounts.authenticate, session, "ana", "wrong!" * 3),
                "unknown name": partial(accounts.authenticate, session, "nobody", PASSWORD),
                "disabled, right": partial(accounts.authenticate, session, "dis", PASSWORD),
                "disabled, wrong": partial(accounts.authenticate, session, "dis", "wrong!" * 3),
            },
            rounds,
        )
        lookups = medians_ms(
            {
                "valid key": partial(key_principal, session, key),
                "near miss": partial(key_principal, session, near),
                "random key": partial(key_principal, session, far),
            },
            rounds * 50,
        )
    space.db.close()
    print(f"\nsign-in (accounts.authenticate), median of {rounds} interleaved calls each:")
    for label, took in sign_ins.items():
        print(f"  {label:<18} {took:8.2f} ms")
    print(f"key lookup (keys.key_principal), median of {rounds * 50} interleaved calls each:")
    for label, took in lookups.items():
        print(f"  {label:<18} {took * 1e3:8.1f} µs")


def accounts_workspace(scratch: Path) -> tuple[str, str]:
    """A workspace with users: ``labmodel`` deployed from project ``lab``, where ``vic`` is a
    viewer; its URL and vic's predict key."""
    url = f"sqlite:///{scratch / 'accounts.db'}"
    space = open_space(scratch / "accounts", url)
    add_dataset(space)
    run_id = queue(space)
    with space.db.session() as session:
        lab = get_project(session, "lab")
        session.add(Deployment(run_id=run_id, project_id=lab.id, model="labmodel", version=1))
        run = session.get(Run, run_id)
        assert run is not None
        run.status = RunStatus.FINISHED  # not queued: the server's worker must stay idle
        accounts.add_user(session, "olga", PASSWORD, admin=True)
        vic = accounts.add_user(session, "vic", PASSWORD)
        share(session, "lab", "vic", Role.VIEWER)
        user_key = create_key(session, vic, "predict")[0]
    space.db.close()
    return url, user_key


def serve(
    store: Path, scratch: Path, name: str, env: dict[str, str]
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    command = [str(BIN / "helixserve"), "serve", "--store", str(store), "--port", str(port)]
    command += ["--grpc-port", str(free_port()), "--reload-interval", "0"]
    full = {"HELIXSERVE_CACHE_DIR": str(scratch / f"cache-{name}"), **env}
    process = start(command, full, scratch / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", process)
    return url, process


Target = tuple[str, str, str | None]  # (server, model, key)


def prepared(scratch: Path) -> tuple[Path, str, str, str, str]:
    """A store with ``labmodel`` and ``shared``, the team workspace (:func:`accounts_workspace`)
    and a service key: the store, the workspace URL, vic's key, the service key and its entry."""
    store = scratch / "store"
    models = ModelStore.open(str(store))
    publish_gc(models, "labmodel")
    publish_gc(models, "shared")
    url, user_key = accounts_workspace(scratch)
    service_key, service_entry = new_key("predict")
    return store, url, user_key, service_key, service_entry


def callers(user_key: str, service_key: str) -> dict[str, Target]:
    """The four callers compared, the open server's first."""
    return {
        "open server, no key": ("open", "labmodel", None),
        "user key, project model": ("team", "labmodel", user_key),
        "user key, no-project model": ("team", "shared", user_key),
        "service key, project model": ("team", "labmodel", service_key),
    }


def hot_path(scratch: Path, seconds: float, rounds: int) -> None:
    store, url, user_key, service_key, service_entry = prepared(scratch)
    open_db = {
        "HELIXSERVE_DATABASE_URL": f"sqlite:///{scratch / 'open.db'}",
        "HELIXSERVE_WORKSPACE_STORE": str(scratch / "open"),
    }
    team_db = {
        "HELIXSERVE_DATABASE_URL": url,
        "HELIXSERVE_WORKSPACE_STORE": str(scratch / "accounts"),
        "HELIXSERVE_API_KEYS": service_entry,
    }
    servers = {"open": serve(store, scratch, "open", open_db)}
    servers["team"] = serve(store, scratch, "team", team_db)
    targets = callers(user_key, service_key)
    found: dict[str, list[tuple[float, float]]] = {t: [] for t in targets}
    try:
        for _ in range(rounds):
            for target, (server, model, key) in targets.items():
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                path = f"{servers[server][0]}/api/v1/models/{model}/predict"
                result = run_wrk(target, path, DOMAIN_BODY, 32, seconds, scratch, headers)
                if result.failed:
                    raise RuntimeError(f"{target}: {result.failed} requests failed")
                found[target].append((result.rps, result.p99_ms))
    finally:
        for _, process in servers.values():
            stop(process)
    baseline = statistics.mean(r for r, _ in found["open server, no key"])
    print(f"\npredict at c=32, serve defaults, {rounds} interleaved rounds of {seconds:g} s:")
    for target, runs in found.items():
        rps = statistics.mean(r for r, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        print(f"  {target:<28} {rps:9.0f} req/s  p99 {p99:6.1f} ms  {rps / baseline:5.2f}x open")


async def _cpu(
    apps: dict[str, Any], targets: dict[str, Target], requests: int, rounds: int
) -> None:
    stops = [await _lifespan(app) for app in apps.values()]
    found: dict[str, list[float]] = {t: [] for t in targets}
    for _ in range(rounds):
        for target, (server, model, key) in targets.items():
            headers = ((b"authorization", f"Bearer {key}".encode()),) if key else ()
            path = f"/api/v1/models/{model}/predict"
            found[target] += await cpu_per_request(apps[server], requests, 1, path, headers)
    for tell, hear in stops:
        await tell({"type": "lifespan.shutdown"})
        await hear()
    base = min(found[next(iter(targets))])
    print(f"\nCPU time per predict request, in-process, best of {rounds} x {requests}:")
    for target, times in found.items():
        print(f"  {target:<28} {min(times):7.1f} µs  {min(times) / base:5.2f}x open")


def cpu_part(scratch: Path, requests: int, rounds: int) -> None:
    """The same four callers as :func:`hot_path`, in one process, as CPU time per request."""
    store, url, user_key, service_key, service_entry = prepared(scratch / "cpu")
    cache = str(scratch / "cpu-cache")

    def app(database_url: str, workspace: Path, keys: list[str]) -> Any:
        return create_app(
            Settings(
                store=str(store),
                reload_interval_s=0,
                cache_dir=cache,
                database_url=database_url,
                workspace_store=str(workspace),
                api_keys=keys,
            )
        )

    apps = {
        "open": app(f"sqlite:///{scratch / 'cpu-open.db'}", scratch / "cpu-open", []),
        "team": app(url, scratch / "cpu" / "accounts", [service_entry]),
    }
    asyncio.run(_cpu(apps, callers(user_key, service_key), requests, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timing-rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=1000, help="per CPU-time round")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; {os.uname().sysname} {os.uname().release}")
    with tempfile.TemporaryDirectory(prefix="helixserve-bench-accounts-") as tmp:
        secret_timing(Path(tmp), args.timing_rounds)
        cpu_part(Path(tmp), args.requests, args.rounds * 2)
        hot_path(Path(tmp), args.seconds, args.rounds)


if __name__ == "__main__":
    main()
