"""One server's state and the logic of every route, independent of the web framework.

Contract:
- :class:`Server` holds the settings, the store, the :class:`~helixserve.serving.registry.Registry`
  of loaded models, the metrics, the API keys and the web UI's key sessions
  (:mod:`helixserve.serving.sessions`; the page guards check a session where the API
  checks a header key). :meth:`Server.start` loads every model (a store
  that cannot be read leaves the server up but not ready; ``/readyz`` says why), starts store
  polling every ``reload_interval_s`` and the gRPC server; :meth:`Server.stop` undoes that.
  :meth:`Server.refresh` re-reads the store now and has this server's other processes do the
  same (:mod:`helixserve.serving.reload_signal`): a deploy or ``/api/v1/admin/reload`` through
  one process is served by all of them.
- Graceful shutdown: :attr:`Server.drain` (:mod:`helixserve.serving.drain`) hooks SIGTERM; while
  it drains, ``/readyz`` answers 503 ``draining`` and the gRPC server takes no new calls (calls
  in flight get ``request_timeout_s`` + 1 s to finish).
- The workspace (:class:`~helixserve.workspace.space.Workspace`: projects, datasets,
  experiments, runs) is opened (migrated) by :meth:`Server.start` in a thread; a database that
  cannot be opened leaves model serving up and every workspace route answering 503 with the
  reason (:meth:`Server.workspace_ready`). While it is open, runs whose worker stopped beating
  are marked interrupted every :data:`SWEEP_EVERY_S` seconds.
- Routes (:mod:`helixserve.serving.routes`) reach the server through
  :mod:`helixserve.serving.deps`; the methods here return a
  :class:`~helixserve.serving.problems.Reply` or raise typed errors that the edge maps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from helixserve.errors import DatabaseError, DatabaseUnavailable
from helixserve.runtime.batcher import BatchPolicy
from helixserve.serving import oip, oip_rest
from helixserve.serving.access import Access
from helixserve.serving.access_log import FLUSH_S, AccessLog
from helixserve.serving.auth import KeyRing, Scope
from helixserve.serving.drain import Drain
from helixserve.serving.files import UploadLimits
from helixserve.serving.grpc_server import GrpcServer, build_server
from helixserve.serving.live_feed import RunFeeds
from helixserve.serving.metrics import Metrics
from helixserve.serving.problems import Reply, json_reply
from helixserve.serving.registry import LoadedModel, Registry
from helixserve.serving.reload_signal import WATCH_EVERY_S, ReloadSignal
from helixserve.serving.sessions import SessionBook, check_page
from helixserve.settings import Settings
from helixserve.store.configured import store_from_settings
from helixserve.store.store import ModelStore
from helixserve.workspace import runs
from helixserve.workspace.space import Workspace

log = logging.getLogger("helixserve.server")
SWEEP_EVERY_S = 10.0


class Server:
    """State and route logic of one server process; see the module contract."""

    def __init__(self, settings: Settings, store: ModelStore | None = None) -> None:
        self.settings = settings
        self.store = store or store_from_settings(settings)
        self.metrics = Metrics()
        self.keys = KeyRing(settings.api_keys)
        secret = settings.session_secret
        self.sessions = SessionBook(
            self.keys, secret.get_secret_value().encode() if secret else None
        )
        self.upload_limits = UploadLimits(
            settings.max_decompressed_bytes, settings.max_upload_records
        )
        self.registry = Registry(
            self.store,
            policy=self.policy_for,
            observer=self.metrics.observer,  # type: ignore[arg-type]
            intra_op_threads=settings.onnx_threads(),
        )
        self.workspace = Workspace.from_settings(settings)
        self.access = Access(self.keys, self.workspace, served_project=self.registry.project_of)
        self._workspace_error: DatabaseError | None = DatabaseUnavailable(
            "the workspace is still opening; try again in a moment."
        )
        self._sweeper: asyncio.Task[None] | None = None
        self.grpc: GrpcServer | None = None
        self._poller: asyncio.Task[None] | None = None
        self.signal = ReloadSignal(settings.reload_signal)
        self._follower: asyncio.Task[None] | None = None
        self.access_log = AccessLog()
        self._log_flusher: asyncio.Task[None] | None = None
        self.drain = Drain(settings.shutdown_drain_s, settings.request_timeout_s + 1)
        self.drain.on_start.append(self._stop_grpc)
        self._grpc_stopping: asyncio.Task[None] | None = None
        self.live = RunFeeds()

    def policy_for(self, name: str) -> BatchPolicy:
        s = self.settings
        override = s.batch_policies.get(name)
        base = BatchPolicy(
            s.batch_max_size, s.batch_max_wait_ms, s.batch_max_queue, s.request_timeout_s
        )
        if override is None:
            return base
        return BatchPolicy(**{**base.__dict__, **override.model_dump(exclude_none=True)})

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.registry.load()
        await self._open_workspace()
        if self.settings.reload_interval_s > 0:
            self._poller = asyncio.create_task(self._poll(self.settings.reload_interval_s))
        if self.signal.path is not None:
            self._follower = asyncio.create_task(self._follow(WATCH_EVERY_S))
        if self.settings.access_log:
            self._log_flusher = asyncio.create_task(self._flush_log(FLUSH_S))
        if self.settings.grpc_port:
            self.grpc = build_server(
                self.registry,
                self.keys,
                self.settings.host,
                self.settings.grpc_port,
                self.metrics,
                self.access,
                self.settings.grpc_engine,
            )
            await self.grpc.start()
        self.drain.hook_sigterm()
        log.info("serving %d model(s) from %s", len(self.registry.names()), self.store.uri)

    async def stop(self) -> None:
        for task in (self._poller, self._follower, self._sweeper, self._log_flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.live.close()
        self.access_log.flush()
        self._stop_grpc()
        if self._grpc_stopping is not None:
            await self._grpc_stopping
        self.registry.close()
        self.workspace.db.close()
        log.info("stopped")

    async def _open_workspace(self) -> None:
        try:
            await asyncio.to_thread(self.workspace.open)
            await asyncio.to_thread(self.access.refresh)
        except DatabaseError as err:
            self._workspace_error = err
            log.error("the workspace is not available: %s", err)
            return
        self._workspace_error = None
        self._sweeper = asyncio.create_task(self._sweep(SWEEP_EVERY_S))

    def workspace_ready(self) -> Workspace:
        """The workspace, or the :class:`~helixserve.errors.DatabaseError` saying why not."""
        if self._workspace_error is not None:
            raise self._workspace_error
        return self.workspace

    async def _sweep(self, interval: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self._sweep_once)
            except Exception:  # keep sweeping whatever happens; the error is logged
                log.exception("marking dead runs interrupted failed")
            await asyncio.sleep(interval)

    def _sweep_once(self) -> None:
        with self.workspace.db.session() as session:
            for run_id in runs.sweep(session):
                log.warning("run %s: its worker stopped (no heartbeat); marked interrupted", run_id)
        self.access.refresh()  # users added by ``helixserve users add`` switch accounts on

    def _stop_grpc(self) -> None:
        """Refuse new gRPC calls now; calls in flight get the request timeout to finish."""
        if self.grpc is not None and self._grpc_stopping is None:
            grace = self.settings.request_timeout_s + 1
            self._grpc_stopping = asyncio.get_running_loop().create_task(self.grpc.stop(grace))

    async def _flush_log(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.access_log.flush()

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.registry.load()
            except Exception:  # keep polling whatever happens; the error is logged
                log.exception("store polling failed")

    async def _follow(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.signal.changed():
                try:
                    await self.registry.load()
                except Exception:  # keep following whatever happens; the error is logged
                    log.exception("reloading after another process's reload failed")

    async def refresh(self) -> None:
        """Re-read the store now, and have this server's other processes do the same."""
        await self.registry.load()
        self.signal.bump()

    # --- operations -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Models are loaded and the server is not draining."""
        return self.registry.ready and not self.drain.draining

    def readiness(self) -> Reply:
        r = self.registry
        body: dict[str, Any] = {
            "models": len(r.names()),
            "store": r.store_error or "ok",
            "loaded_at": r.snapshot.loaded_at.isoformat() if r.snapshot.loaded_at else None,
        }
        if r.load_errors:
            body["load_errors"] = r.load_errors
        if self.drain.draining:
            reason = "the server is shutting down (SIGTERM); send requests to another instance"
            return json_reply({"status": "draining", "reason": reason, **body}, status=503)
        if not r.ready:
            reason = r.store_error or "no model could be loaded from the store " + self.store.uri
            return json_reply({"status": "not ready", "reason": reason, **body}, status=503)
        return json_reply({"status": "degraded" if r.store_error else "ready", **body})

    async def reload(self) -> Reply:
        """Re-read the store now (the route checks the ``admin`` scope first)."""
        await self.refresh()
        r = self.registry
        models = {n: sorted(r.entry(n).versions) for n in r.names()}
        return json_reply(
            {"models": models, "store": r.store_error or "ok", "load_errors": r.load_errors}
        )

    # --- prediction routes ----------------------------------------------------------------------

    def model(self, name: str, version: str | None, key: str | None) -> LoadedModel:
        """``name`` at ``version`` for the caller of ``key`` (while accounts are on, their access
        to the model's project is checked: :class:`~helixserve.serving.access.Access`)."""
        if self.access.accounts_on:
            self.access.check_model(self.access.model_caller(key), name)
        else:
            self.keys.check(key, "predict")
        return self.registry.resolve(name, version)

    def check_page(self, session_id: str | None, scope: Scope = "predict") -> None:
        """Raise unless the web UI's session (cookie value) may see a page of ``scope``."""
        check_page(self.keys, self.sessions, session_id, scope)

    async def infer(self, model: LoadedModel, request: oip_rest.InferRequest) -> Reply:
        """An OIP infer request (already parsed) answered by ``model``."""
        outputs = await oip.infer(model, request.inputs, request.outputs)
        data, json_length = oip_rest.render_infer_response(
            model.name, model.version, request, outputs
        )
        reply = Reply(200, data)
        if json_length is not None:
            reply.content_type = b"application/octet-stream"
            reply.headers.append((b"inference-header-content-length", str(json_length).encode()))
        return stamp(reply, model)


def stamp(reply: Reply, model: LoadedModel) -> Reply:
    """Note the model and version that answered (metrics, access log)."""
    reply.model, reply.version = model.name, str(model.version)
    return reply
