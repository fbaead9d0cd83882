"""The request body as a blocking file for a worker thread (serving/body_stream.py): every byte
arrives in order whatever the chunk sizes, the event loop reads at most one block ahead of the
thread (memory does not grow with the body), and an error of the body reaches the thread's
read."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
import pytest
from starlette.requests import ClientDisconnect

from helixserve.serving.body_stream import BUFFER, blocking_file

READ = 256 * 1024  # what the thread asks for at a time
PATTERN = bytes(range(251)) * (50 * BUFFER // 251)  # byte i of a body is i % 251


@dataclass
class Body:
    """``total`` bytes in chunks of ``chunk`` bytes, counting what was pulled; raises
    ``ClientDisconnect`` after ``cut_after`` bytes when given."""

    total: int
    chunk: int
    cut_after: int | None = None
    pulled: int = 0
    ahead: list[int] = field(default_factory=list)  # pulled - read, at each pull
    read: int = 0

    def piece(self, at: int, size: int) -> bytes:
        return PATTERN[at % 251 : at % 251 + size]

    async def chunks(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            if self.cut_after is not None and self.pulled >= self.cut_after:
                raise ClientDisconnect()
            size = min(self.chunk, self.total - self.pulled)
            data = self.piece(self.pulled, size)
            self.pulled += size
            self.ahead.append(self.pulled - self.read)
            await anyio.sleep(0)
            yield data


def read_all(body: Body) -> bytes:
    """In a worker thread: read the whole body through :func:`blocking_file`."""
    stream = blocking_file(body.chunks())
    digest, parts = hashlib.sha256(), []
    while block := stream.read(READ):
        body.read += len(block)
        digest.update(block)
        parts.append(block)
    return b"".join(parts)


@pytest.mark.parametrize("chunk", [1, 1000, 65536, BUFFER + 7, 3 * BUFFER])
def test_every_byte_arrives_in_order(chunk: int) -> None:
    total = 3 * BUFFER + 12345 if chunk > 1 else 5000
    body = Body(total, chunk)

    async def main() -> bytes:
        return await anyio.to_thread.run_sync(read_all, body)

    got = anyio.run(main)
    assert got == body.piece(0, total)


def test_the_loop_reads_at_most_one_block_ahead_of_the_thread() -> None:
    body = Body(40 * BUFFER, 64 * 1024)

    async def main() -> bytes:
        return await anyio.to_thread.run_sync(read_all, body)

    assert len(anyio.run(main)) == 40 * BUFFER
    # the thread's buffer, the block it reads from and the block ahead (each a chunk over, at most)
    assert max(body.ahead) <= 3 * BUFFER + 2 * body.chunk


def test_a_client_gone_mid_body_raises_in_the_thread() -> None:
    body = Body(10 * BUFFER, 65536, cut_after=3 * BUFFER)

    async def main() -> bytes:
        return await anyio.to_thread.run_sync(read_all, body)

    with pytest.raises(ClientDisconnect):
        anyio.run(main)
    assert body.read <= 3 * BUFFER
