"""A run's live events, read from the database once per server process and shared by every stream.

Contract:
- :class:`RunFeeds` (one per server process: ``Server.live``) keeps one :class:`RunFeed` per run
  that has at least one open event stream, keyed by project and run id.
  :meth:`RunFeeds.follow` is one stream (the route :mod:`helixserve.serving.routes.live` checks
  the caller's access first; nothing here does).
- A feed reads the database in a worker thread — the run (:func:`read_batch`: through
  :func:`~helixserve.workspace.deploy.project_run`, so a run of another project raises
  :class:`~helixserve.errors.RunNotFound`), then its epochs and log lines after those it has
  read — at once, then every :data:`POLL_S` seconds while a stream follows it. The database work
  of a run is the same for one watcher and for a hundred.
- The feed keeps what it read (each epoch's point and log line as JSON text, and the latest
  status), so a stream that joins later replays from memory, as a stream of its own would have
  read the database: the epochs after its cursor, then the log lines after its cursor, then the
  status. After that it gets each poll's new epochs and log lines, and the status whenever it
  differs from the last one the stream sent. Each stream has its own :class:`Cursor`; an event's
  ``id`` is that cursor after the event (``<last epoch>-<last log line>``).
- The feed stops after the poll that reads a final status (:data:`FINAL`) and after the first
  poll once ``draining()`` is true; its streams end after the events of that poll. A stream whose
  client leaves leaves the feed; the last one to leave stops the polling, and the next stream
  of that run starts a new feed. A read that raises (the run deleted, the database unreachable)
  ends every stream of the feed with that error.
- A stream's undelivered polls wait in its own queue (a slow client holds at most the run's
  events, never blocks the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sse_starlette import ServerSentEvent

from helixserve.workspace import runs
from helixserve.workspace.deploy import project_run
from helixserve.workspace.models import Run, RunEpoch, RunStatus
from helixserve.workspace.space import Workspace

POLL_S = 0.25
FINAL = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.STOPPED, RunStatus.INTERRUPTED})
_CURSOR = re.compile(r"^(\d{1,9})-(\d{1,9})$")
Draining = Callable[[], bool]


@dataclass
class Cursor:
    """What a client has seen: the last epoch and log line (0: none), and the last status."""

    epoch: int = 0
    seq: int = 0
    status: str | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, last_event_id: str | None) -> Cursor:
        found = _CURSOR.fullmatch((last_event_id or "").strip())
        return cls(int(found[1]), int(found[2])) if found else cls()

    @property
    def id(self) -> str:
        return f"{self.epoch}-{self.seq}"


@dataclass(frozen=True)
class Batch:
    """What one read found: new epochs and log lines (number, JSON data), the status (JSON) and
    whether the run has ended."""

    epochs: Sequence[tuple[int, str]]
    logs: Sequence[tuple[int, str]]
    status: str
    ended: bool


def status_data(run: Run) -> dict[str, Any]:
    """The ``status`` event's data for ``run``."""
    return {
        "status": run.status.value,
        "error": run.error,
        "best_epoch": run.best_epoch,
        "epochs_planned": run.epochs_planned,
        "started_at": run.started_at.isoformat() if run.started_at else None,
    }


def _point(row: RunEpoch) -> str:
    return json.dumps(
        {
            "epoch": row.epoch,
            "train_loss": row.train_loss,
            "val_loss": row.val_loss,
            "metrics": row.metrics,
            "at": row.at.isoformat(),
        }
    )


def read_batch(
    space: Workspace, project: str, run_id: str, after_epoch: int, after_seq: int
) -> Batch:
    """The run's epochs and log lines after those numbers, and its status. ``run_id`` is an id or
    ``EXPERIMENT:NUMBER``. The run is read first: a run found ended has all its epochs written
    already. The status and ``ended`` both come from that first read (the epoch and log queries
    read the run again, and a run that ended in between must not end the stream on the status
    before)."""
    with space.db.session() as session:
        run = project_run(session, project, run_id)
        status, ended = json.dumps(status_data(run)), run.status in FINAL  # before the re-reads
        epochs = [
            (row.epoch, _point(row)) for row in runs.epochs_since(session, run.id, after_epoch)
        ]
        logs = [
            (line.seq, json.dumps({"seq": line.seq, "line": line.line}))
            for line in runs.logs_since(session, run.id, after_seq)
        ]
        return Batch(epochs, logs, status, ended)


def events_of(batch: Batch, cursor: Cursor) -> list[ServerSentEvent]:
    """The events of ``batch`` that ``cursor`` has not seen (``cursor`` moves on)."""
    events: list[ServerSentEvent] = []
    for epoch, data in batch.epochs:
        if epoch > cursor.epoch:
            cursor.epoch = epoch
            events.append(ServerSentEvent(data=data, event="epoch", id=cursor.id))
    for seq, data in batch.logs:
        if seq > cursor.seq:
            cursor.seq = seq
            events.append(ServerSentEvent(data=data, event="log", id=cursor.id))
    if batch.status != cursor.status:
        cursor.status = batch.status
        events.append(ServerSentEvent(data=batch.status, event="status", id=cursor.id))
    return events


class RunFeed:
    """One run's poller and its streams' queues (see the module contract)."""

    def __init__(
        self, read: Callable[[int, int], Batch], poll_s: float, draining: Draining
    ) -> None:
        self._read = read
        self._poll_s = poll_s
        self._draining = draining
        self.epochs: list[tuple[int, str]] = []
        self.logs: list[tuple[int, str]] = []
        self.status: str | None = None  # None until the first read
        self.error: Exception | None = None
        self.queues: set[asyncio.Queue[Batch | None]] = set()
        self.on_end: Callable[[RunFeed], None] = lambda _feed: None
        self.task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        try:
            while True:
                after = (
                    self.epochs[-1][0] if self.epochs else 0,
                    self.logs[-1][0] if self.logs else 0,
                )
                batch = await asyncio.to_thread(self._read, *after)
                self.epochs += batch.epochs
                self.logs += batch.logs
                self.status = batch.status
                for queue in self.queues:
                    queue.put_nowait(batch)
                if batch.ended or self._draining():
                    return
                await asyncio.sleep(self._poll_s)
        except Exception as err:  # handed to every stream, which raises it
            self.error = err
        finally:
            for queue in self.queues:
                queue.put_nowait(None)
            self.on_end(self)

    def join(self) -> tuple[Batch | None, asyncio.Queue[Batch | None]]:
        """A new stream's queue, and what the feed has read so far (``None``: nothing yet)."""
        queue: asyncio.Queue[Batch | None] = asyncio.Queue()
        self.queues.add(queue)
        if self.status is None:
            return None, queue
        return Batch(self.epochs, self.logs, self.status, ended=False), queue

    def leave(self, queue: asyncio.Queue[Batch | None]) -> None:
        self.queues.discard(queue)
        if not self.queues and not self.task.done():
            self.task.cancel()


class RunFeeds:
    """The feeds of one server process, by (project, run id)."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self.feeds: dict[tuple[str, str], RunFeed] = {}

    def _feed(self, space: Workspace, key: tuple[str, str], draining: Draining) -> RunFeed:
        feed = self.feeds.get(key)
        if feed is None:
            feed = RunFeed(partial(read_batch, space, *key), self.poll_s, draining)
            feed.on_end = partial(self._forget, key)
            self.feeds[key] = feed
        return feed

    def _forget(self, key: tuple[str, str], feed: RunFeed) -> None:
        if self.feeds.get(key) is feed:
            del self.feeds[key]

    async def follow(
        self, space: Workspace, project: str, run_id: str, cursor: Cursor, draining: Draining
    ) -> AsyncIterator[ServerSentEvent]:
        """One stream of the run: replay after ``cursor``, then follow until the feed ends."""
        key = (project, run_id)
        feed = self._feed(space, key, draining)
        batch, queue = feed.join()
        try:
            while True:
                if batch is None:
                    batch = await queue.get()
                if batch is None:
                    if feed.error is not None:
                        raise feed.error
                    return
                for event in events_of(batch, cursor):
                    yield event
                if batch.ended:
                    return
                batch = None
        finally:
            feed.leave(queue)
            if not feed.queues:
                self._forget(key, feed)

    async def close(self) -> None:
        """Stop every feed (the server is stopping)."""
        for feed in list(self.feeds.values()):
            feed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed.task
        self.feeds.clear()
