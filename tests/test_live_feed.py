"""The shared live feed of a run (serving/live_feed.py) on a real SQLite workspace: several streams
share one poller and get the same events, a late stream replays from the feed what a stream of
its own would have read, a stream that leaves does not stop the others, the last one stops the
poller, draining and a failing read end every stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from helixserve.errors import RunNotFound
from helixserve.serving.live_feed import Cursor, RunFeeds
from helixserve.workspace import runs
from helixserve.workspace.space import Workspace
from tests.support.worker_runs import add_dataset, dna_csv, open_space, queue

POLL_S = 0.01
WORKER = "feed-test"
Event = tuple[str, str, dict[str, object]]


@pytest.fixture
def space(tmp_path: Path) -> Iterator[Workspace]:
    opened = open_space(tmp_path, f"sqlite:///{tmp_path / 'feed.db'}")
    add_dataset(opened, data=dna_csv(40))
    yield opened
    opened.db.close()


@dataclass
class Stream:
    """One follower of a run: the events it got, as (event, id, data)."""

    feeds: RunFeeds
    space: Workspace
    run_id: str
    cursor: Cursor = field(default_factory=Cursor)
    draining: Callable[[], bool] = lambda: False
    got: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] = field(init=False)

    def __post_init__(self) -> None:
        self.task = asyncio.create_task(self._read())  # follows at once (in a running loop)

    async def _read(self) -> None:
        events = self.feeds.follow(self.space, "lab", self.run_id, self.cursor, self.draining)
        async for event in events:
            self.got.append((str(event.event), str(event.id), json.loads(str(event.data))))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.got]

    def epochs(self) -> list[object]:
        return [data["epoch"] for kind, _, data in self.got if kind == "epoch"]


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (a test that hangs fails on pytest's timeout instead)."""
    while not condition():
        await asyncio.sleep(POLL_S)


def claim(space: Workspace) -> str:
    claimed = runs.claim(space.db, WORKER)
    assert claimed is not None
    return claimed.id


def write_epoch(space: Workspace, run_id: str, epoch: int) -> None:
    with space.db.session() as session:
        runs.record_epoch(session, run_id, epoch, train_loss=1 / epoch, val_loss=2 / epoch)
        runs.log(session, run_id, f"epoch {epoch}")


def finish(space: Workspace, run_id: str) -> None:
    with space.db.session() as session:
        runs.finish(session, run_id, "bundle", {}, {}, best_epoch=1)


def got_epoch(streams: list[Stream], epoch: int) -> bool:
    return all(stream.epochs()[-1:] == [epoch] for stream in streams)


def statuses(stream: Stream) -> list[object]:
    return [data["status"] for kind, _, data in stream.got if kind == "status"]


def test_streams_of_a_run_share_one_poller_and_get_the_same_events(space: Workspace) -> None:
    run_id = queue(space)

    async def scenario() -> list[Stream]:
        feeds = RunFeeds(POLL_S)
        streams = [Stream(feeds, space, run_id) for _ in range(3)]
        await until(lambda: all(s.got for s in streams))
        assert list(feeds.feeds) == [("lab", run_id)]
        assert len(feeds.feeds["lab", run_id].queues) == 3
        claim(space)
        for epoch in (1, 2, 3):
            write_epoch(space, run_id, epoch)
            await until(partial(got_epoch, streams, epoch))
        finish(space, run_id)
        await asyncio.gather(*(s.task for s in streams))
        assert feeds.feeds == {}
        return streams

    first, *others = asyncio.run(scenario())
    assert all(other.got == first.got for other in others)
    assert first.epochs() == [1, 2, 3]
    assert statuses(first) == ["queued", "running", "finished"]
    assert first.got[-1][1] == "3-3"


def test_a_late_stream_replays_what_a_stream_of_its_own_would_read(space: Workspace) -> None:
    run_id = queue(space)

    async def scenario() -> tuple[Stream, Stream, Stream]:
        feeds = RunFeeds(POLL_S)
        early = Stream(feeds, space, run_id)
        claim(space)
        write_epoch(space, run_id, 1)
        write_epoch(space, run_id, 2)
        await until(lambda: early.epochs() == [1, 2])
        late = Stream(feeds, space, run_id, Cursor.parse("1-1"))
        alone = Stream(RunFeeds(POLL_S), space, run_id, Cursor.parse("1-1"))
        await until(lambda: "status" in late.kinds() and "status" in alone.kinds())
        assert late.got == alone.got  # from the feed's memory = from the database
        write_epoch(space, run_id, 3)
        finish(space, run_id)
        await asyncio.gather(*(s.task for s in (early, late, alone)))
        return early, late, alone

    early, late, alone = asyncio.run(scenario())
    assert late.got == alone.got
    assert [(kind, ident) for kind, ident, _ in late.got] == [
        ("epoch", "2-1"),
        ("log", "2-2"),
        ("status", "2-2"),
        ("epoch", "3-2"),
        ("log", "3-3"),
        ("status", "3-3"),
    ]
    assert late.got[0][2]["val_loss"] == 1.0
    assert early.epochs() == [1, 2, 3]
    assert statuses(late) == ["running", "finished"]


def test_a_stream_that_leaves_does_not_stop_the_others(space: Workspace) -> None:
    run_id = queue(space)

    async def scenario() -> tuple[Stream, Stream]:
        feeds = RunFeeds(POLL_S)
        leaving, staying = (
            Stream(feeds, space, run_id),
            Stream(feeds, space, run_id),
        )
        await until(lambda: bool(leaving.got and staying.got))
        leaving.task.cancel()  # the client went away
        await asyncio.gather(leaving.task, return_exceptions=True)
        feed = feeds.feeds["lab", run_id]
        assert len(feed.queues) == 1 and not feed.task.done()
        claim(space)
        write_epoch(space, run_id, 1)
        await until(lambda: staying.epochs() == [1])
        finish(space, run_id)
        await staying.task
        return leaving, staying

    leaving, staying = asyncio.run(scenario())
    assert leaving.kinds() == ["status"]
    assert staying.epochs() == [1]
    assert statuses(staying) == ["queued", "running", "finished"]


def test_the_last_stream_to_leave_stops_the_poller(space: Workspace) -> None:
    run_id = queue(space)

    async def scenario() -> None:
        feeds = RunFeeds(POLL_S)
        only = Stream(feeds, space, run_id)
        await until(lambda: bool(only.got))
        feed = feeds.feeds["lab", run_id]
        only.task.cancel()
        await asyncio.gather(only.task, return_exceptions=True)
        assert feeds.feeds == {}
        await asyncio.gather(feed.task, return_exceptions=True)
        assert feed.task.cancelled()
        again = Stream(feeds, space, run_id)
        await until(lambda: bool(again.got))
        assert feeds.feeds["lab", run_id] is not feed
        await feeds.close()
        await asyncio.gather(again.task, return_exceptions=True)

    asyncio.run(scenario())


def test_draining_ends_every_stream(space: Workspace) -> None:
    run_id = queue(space)
    draining = False

    async def scenario() -> list[Stream]:
        feeds = RunFeeds(POLL_S)
        streams = [Stream(feeds, space, run_id, draining=lambda: draining) for _ in "ab"]
        await until(lambda: all(s.got for s in streams))
        nonlocal draining
        draining = True
        await asyncio.gather(*(s.task for s in streams))
        assert feeds.feeds == {}
        return streams

    for stream in asyncio.run(scenario()):
        assert statuses(stream) == ["queued"]


def test_a_failing_read_ends_every_stream_with_its_error(space: Workspace) -> None:
    async def scenario() -> list[BaseException | None]:
        feeds = RunFeeds(POLL_S)
        streams = [Stream(feeds, space, "nope") for _ in "ab"]
        done = await asyncio.gather(*(s.task for s in streams), return_exceptions=True)
        assert feeds.feeds == {}
        return [d if isinstance(d, BaseException) else None for d in done]

    for error in asyncio.run(scenario()):
        assert isinstance(error, RunNotFound)
        assert str(error) == "project 'lab' has no run 'nope'."


def test_a_run_that_ends_during_a_read_still_sends_its_final_status(
    space: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run finishes after a read took its status and before it read the log lines (which
    read the run again): that read must not end the streams; the next one sends ``finished``."""
    run_id = queue(space)
    claim(space)
    write_epoch(space, run_id, 1)
    real = runs.logs_since
    finished_once: list[bool] = []

    def logs_then_finish(session: object, *args: object) -> object:
        if not finished_once:
            finished_once.append(True)
            finish(space, run_id)
        return real(session, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(runs, "logs_since", logs_then_finish)

    async def scenario() -> Stream:
        stream = Stream(RunFeeds(POLL_S), space, run_id)
        await stream.task
        return stream

    stream = asyncio.run(scenario())
    assert statuses(stream) == ["running", "finished"]
    assert stream.epochs() == [1]
