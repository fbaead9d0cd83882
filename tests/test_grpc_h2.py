"""The HTTP/2 gRPC server (serving/grpc_h2.py), spoken to frame by frame.

Most tests use a real server over the zoo and a bare HTTP/2 client (tests/support/h2client.py)
that sends exactly the frames a test names; the shutdown and reset tests run an
:class:`~helixserve.serving.grpc_h2.H2Server` in the test's own event loop with a handler that
waits until the test lets it answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helixserve.serving.grpc_h2 import H2Server
from helixserve.serving.grpc_server import MESSAGES
from helixserve.serving.grpc_wire import Answer
from tests.support.h2client import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    H2Client,
    Reply,
    grpc_message,
)
from tests.support.server import Running, free_port, running

ZOO = Path(__file__).resolve().parents[1] / "src" / "helixserve" / "zoo" / "store"
REFUSED_STREAM, CANCEL, PROTOCOL_ERROR = 0x7, 0x8, 0x1
T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running(ZOO, tmp_path_factory.mktemp("h2"), grpc_engine="h2") as s:
        yield s


def talk(
    address: str,
    steps: Callable[[H2Client], Awaitable[T]],
    settings: dict[int, int] | None = None,
) -> T:
    """Run ``steps(client)`` on a new connection to ``address``."""

    async def go() -> T:
        client = await H2Client.connect(address, settings)
        try:
            return await steps(client)
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_call_on_a_bare_connection(server: Running) -> None:
    async def steps(client: H2Client) -> Reply:
        client.request(1, "ServerMetadata", b"")
        return await client.reply(1)

    reply = talk(server.grpc, steps)
    assert reply.headers == {":status": "200", "content-type": "application/grpc"}
    assert reply.status == "0"
    answer = MESSAGES["ServerMetadataResponse"].FromString(reply.payload())
    assert answer.name == "helixserve"


@pytest.mark.parametrize("huffman", [True, False])
def test_header_blocks_in_pieces_plain_or_huffman_and_repeated(
    server: Running, huffman: bool
) -> None:
    """A header block split over HEADERS + 2 CONTINUATION frames, then the same call again
    (its block now all indexed from the dynamic table)."""
    request = MESSAGES["ModelReadyRequest"](name="primer-binding").SerializeToString()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/inference.GRPCInferenceService/ModelReady"),
        (":authority", "test"),
        ("content-type", "application/grpc"),
        ("x-custom-metadata", "a value long enough to be worth huffman coding"),
    ]

    async def steps(client: H2Client) -> list[Reply]:
        replies = []
        for stream in (1, 3):
            block = client.block(headers, huffman=huffman)
            third = max(1, len(block) // 3)
            client.send(HEADERS, 0, stream, block[:third])
            client.send(CONTINUATION, 0, stream, block[third : 2 * third])
            client.send(CONTINUATION, END_HEADERS, stream, block[2 * third :])
            client.send(DATA, END_STREAM, stream, grpc_message(request))
            replies.append(await client.reply(stream))
        return replies

    for reply in talk(server.grpc, steps):
        assert reply.status == "0"
        assert MESSAGES["ModelReadyResponse"].FromString(reply.payload()).ready


INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.mark.parametrize(
    ("method", "body", "content_type", "expected"),
    [
        ("Nope", b"", "application/grpc", ("12", f"no method {INFER[:-10]}Nope here.")),
        (
            "ModelInfer",
            b"\x07\x07\x07",
            "application/grpc",
            ("3", "the request is not a valid inference.ModelInferRequest message."),
        ),
        ("ModelInfer", b"", "text/plain", ("415", "")),
    ],
)
def test_refused_calls(
    server: Running, method: str, body: bytes, content_type: str, expected: tuple[str, str]
) -> None:
    async def steps(client: H2Client) -> Reply:
        client.request(1, method, body, content_type=content_type)
        return await client.reply(1)

    reply = talk(server.grpc, steps)
    found = reply.status or reply.headers[":status"]
    assert (found, reply.message) == expected


def _framed(flag: int, message: bytes, length: int | None = None) -> bytes:
    return bytes((flag,)) + struct.pack(">I", len(message) if length is None else length) + message


MODEL_READY = MESSAGES["ModelReadyRequest"](name="primer-binding").SerializeToString()
NOT_ONE = ("13", "the request is not one length-prefixed message.")


@pytest.mark.parametrize(
    ("encoding", "data", "expected"),
    [
        (None, _framed(0, b"ab", length=9), NOT_ONE),
        (None, b"\x00\x00", NOT_ONE),
        (
            "snappy",
            _framed(1, b"ab"),
            (
                "12",
                "messages compressed with 'snappy' are not supported; send them "
                "uncompressed, gzip or deflate.",
            ),
        ),
        ("gzip", _framed(1, b"not gzip"), ("13", "the message is not valid gzip data.")),
        (
            "gzip",
            _framed(1, gzip.compress(MODEL_READY)[:-9]),
            ("13", "the message is not valid gzip data."),
        ),
        ("gzip", _framed(1, gzip.compress(MODEL_READY)), ("0", "")),
        ("deflate", _framed(1, zlib.compress(MODEL_READY)), ("0", "")),
        (
            "gzip",
            _framed(1, gzip.compress(b"\x00" * (2 << 20))),
            ("8", "the request is larger than 1,048,576 bytes."),
        ),
    ],
)
def test_message_framing_and_compression(
    encoding: str | None, data: bytes, expected: tuple[str, str]
) -> None:
    """Framed messages, plain or compressed, against a server taking at most 1 MiB."""

    async def go() -> Reply:
        server = H2Server(Waiting(released=True), "127.0.0.1", port := free_port(), 1 << 20)
        await server.start()
        client = await H2Client.connect(f"127.0.0.1:{port}")
        extra = [("grpc-encoding", encoding)] if encoding else []
        client.send(HEADERS, END_HEADERS, 1, client.block(_headers("ModelReady") + extra))
        client.send(DATA, END_STREAM, 1, data)
        reply = await client.reply(1)
        await client.close()
        await server.stop(0)
        return reply

    reply = asyncio.run(go())
    assert (reply.status, reply.message) == expected
    if expected[0] == "0":
        assert reply.payload() == MODEL_READY  # the handler saw the inflated message


def _headers(method: str) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/inference.GRPCInferenceService/" + method),
        (":authority", "test"),
        ("content-type", "application/grpc"),
    ]


def test_ping_is_acknowledged_with_its_payload(server: Running) -> None:
    async def steps(client: H2Client) -> tuple[int, bytes]:
        client.send(PING, 0, 0, b"12345678")
        while True:
            kind, flags, _, payload = await client.frame()
            if kind == PING:
                return flags, payload

    assert talk(server.grpc, steps) == (0x1, b"12345678")


def test_an_answer_waits_for_the_clients_window(server: Running) -> None:
    """The client allows 16 bytes per stream: the answer stops there until WINDOW_UPDATE."""
    request = MESSAGES["ModelMetadataRequest"](name="primer-binding").SerializeToString()

    async def steps(client: H2Client) -> tuple[bytes, Reply]:
        client.request(1, "ModelMetadata", request)
        while True:
            kind, _, stream, payload = await client.frame()
            if kind == DATA and stream == 1:
                break
        client.send(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100_000))
        return payload, await client.reply(1)

    first, rest = talk(server.grpc, steps, settings={0x4: 16})
    assert len(first) == 16
    message = first + rest.data
    answer = MESSAGES["ModelMetadataResponse"].FromString(message[5:])
    assert (rest.status, answer.name) == ("0", "primer-binding")


def test_a_request_and_answer_larger_than_the_windows(server: Running) -> None:
    """4,000 pre-encoded sequences (3.2 MB, past the 1 MiB stream window) through
    tritonclient; 4,000 labels and probabilities back."""
    rng = np.random.default_rng(0)
    onehot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (4000, 50))].transpose(0, 2, 1)
    tensor = tgrpc.InferInput("input", list(onehot.shape), "FP32")
    tensor.set_data_from_numpy(np.ascontiguousarray(onehot))
    result = tgrpc.InferenceServerClient(server.grpc).infer("primer-binding", [tensor])
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (4000, 2)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert result.as_numpy("label").shape == (4000,)


def test_a_protocol_error_ends_the_connection_with_goaway(server: Running) -> None:
    async def steps(client: H2Client) -> tuple[tuple[int, ...], bytes, bytes]:
        client.send(DATA, 0, 0, b"x")  # DATA on stream 0
        while True:
            kind, _, _, payload = await client.frame()
            if kind == GOAWAY:
                break
        rest = await asyncio.wait_for(client.reader.read(), 10)
        return struct.unpack(">II", payload[:8]), payload[8:], rest

    assert talk(server.grpc, steps) == ((0, PROTOCOL_ERROR), b"DATA on idle stream 0", b"")


def test_frames_after_a_connection_error_do_not_reset_the_goaway(server: Running) -> None:
    """Input that arrives after the GOAWAY is drained: the client reads it and a clean end."""

    async def steps(client: H2Client) -> tuple[bytes, bytes]:
        client.send(DATA, 0, 0, b"x")
        await asyncio.sleep(0.2)  # the server has answered and (before the fix) closed
        for _ in range(20):
            client.send(PING, 0, 0, b"12345678")
        await client.writer.drain()
        await asyncio.sleep(0.2)
        seen = await asyncio.wait_for(client.reader.read(), 10)
        return seen[-len(b"DATA on idle stream 0") :], await client.reader.read()

    assert talk(server.grpc, steps) == (b"DATA on idle stream 0", b"")


def test_http1_is_not_answered(server: Running) -> None:
    """The connection closes after the server's own preface (SETTINGS, WINDOW_UPDATE)."""

    async def go() -> bytes:
        host, port = server.grpc.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return answer

    answer, kinds = asyncio.run(go()), []
    while answer:
        kinds.append(answer[3])
        answer = answer[9 + int.from_bytes(answer[:3], "big") :]
    assert kinds == [SETTINGS, WINDOW_UPDATE]


class Waiting:
    """A handler that answers once the test releases it (``ok``; a ModelReady call gets its
    own message back), noting cancels."""

    def __init__(self, released: bool = False) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        if released:
            self.release.set()
        self.cancelled = 0

    async def __call__(self, path: str, metadata: dict[str, str], message: bytes) -> Answer:
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return Answer(0, "", message if path.endswith("/ModelReady") else b"ok")


def test_stop_answers_calls_in_flight_and_refuses_new_streams() -> None:
    async def go() -> None:
        handler, port = Waiting(), free_port()
        server = H2Server(handler, "127.0.0.1", port, 1 << 20)
        await server.start()
        client = await H2Client.connect(f"127.0.0.1:{port}")
        client.request(1, "ServerLive", b"")
        await asyncio.wait_for(handler.entered.wait(), 10)
        stopping = asyncio.create_task(server.stop(5))
        while (found := await client.frame())[0] != GOAWAY:
            pass
        assert struct.unpack(">II", found[3]) == (1, 0)  # last stream 1, NO_ERROR
        client.request(3, "ServerLive", b"")
        assert (await client.reply(3)).reset == REFUSED_STREAM
        handler.release.set()
        answered = await client.reply(1)
        assert (answered.status, answered.payload()) == ("0", b"ok")
        await stopping
        assert await asyncio.wait_for(client.reader.read(), 10) == b""  # closed

    asyncio.run(go())


def test_reset_stream_cancels_the_call() -> None:
    async def go() -> None:
        handler, port = Waiting(), free_port()
        server = H2Server(handler, "127.0.0.1", port, 1 << 20)
        await server.start()
        client = await H2Client.connect(f"127.0.0.1:{port}")
        client.request(1, "ServerLive", b"")
        await asyncio.wait_for(handler.entered.wait(), 10)
        client.send(RST_STREAM, 0, 1, struct.pack(">I", CANCEL))
        for _ in range(100):
            if handler.cancelled:
                break
            await asyncio.sleep(0.02)
        assert handler.cancelled == 1
        await client.close()
        await server.stop(0)

    asyncio.run(go())


def test_unfinished_requests_hold_back_the_connection_window() -> None:
    """Requests not yet complete holding over twice the largest message (here 1,000 bytes):
    the connection window is not given back until they go (here: reset by the client)."""

    async def go() -> tuple[list[int], list[int]]:
        server = H2Server(Waiting(released=True), "127.0.0.1", port := free_port(), 1000)
        await server.start()
        client = await H2Client.connect(f"127.0.0.1:{port}")
        for stream in (1, 3, 5):  # 2,700 bytes held
            client.send(HEADERS, END_HEADERS, stream, client.block(_headers("ServerLive")))
            client.send(DATA, 0, stream, b"x" * 900)
        client.send(HEADERS, END_HEADERS, 7, client.block(_headers("ServerLive")))
        for _ in range(520):  # 8.5 MB on a stream refused at once as too large: dropped
            client.send(DATA, 0, 7, b"y" * 16384)
        held = await _connection_updates(client, 1.0)
        for stream in (1, 3, 5):
            client.send(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
        released = await _connection_updates(client, 1.0)
        await client.close()
        await server.stop(0)
        return held, released

    held, released = asyncio.run(go())
    assert held == [(16 << 20) - 65535]  # only the one sent when the connection opened
    assert len(released) == 1 and released[0] >= 8 << 20


async def _connection_updates(client: H2Client, seconds: float) -> list[int]:
    """The increments of the connection WINDOW_UPDATE frames read within ``seconds``."""
    found = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                kind, _, stream, payload = await client.frame()
                if kind == WINDOW_UPDATE and stream == 0:
                    found.append(struct.unpack(">I", payload)[0])
    return found


FRAMES = st.lists(
    st.tuples(
        st.integers(0, 10),  # frame type (10: unknown)
        st.integers(0, 255),  # flags
        st.sampled_from([0, 1, 2, 3, 5]),  # stream
        st.binary(max_size=40),
    ),
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(frames=FRAMES)
@example(frames=[(SETTINGS, 0, 0, b"12345")])  # malformed lengths of every fixed-size frame
@example(frames=[(PING, 0, 0, b"1234")])
@example(frames=[(WINDOW_UPDATE, 0, 0, b"12")])
@example(frames=[(HEADERS, END_HEADERS, 1, b""), (RST_STREAM, 0, 1, b"1")])
@example(frames=[(2, 0, 1, b"12")])  # PRIORITY
@example(frames=[(HEADERS, END_HEADERS | 0x8, 1, b"\xff")])  # padding past the frame
@example(frames=[(HEADERS, END_HEADERS | 0x20, 1, b"\x00")])  # priority fields cut short
@example(frames=[(HEADERS, 0, 1, b"\x82"), (DATA, 0, 1, b"")])  # interrupted header block
def test_any_frames_leave_the_server_serving(frames: list[tuple[int, int, int, bytes]]) -> None:
    """Whatever frames a client sends, the server answers them or ends that connection with
    GOAWAY, raises nothing on the event loop, and the next connection is served."""
    problems: list[str] = []

    async def go() -> Reply:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: problems.append(context["message"]))
        server = H2Server(Waiting(released=True), "127.0.0.1", port := free_port(), 1000)
        await server.start()
        client = await H2Client.connect(f"127.0.0.1:{port}")
        for kind, flags, stream, payload in frames:
            client.send(kind, flags, stream, payload)
        with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            async with asyncio.timeout(0.3):
                while True:
                    await client.frame()
        client.writer.close()
        fresh = await H2Client.connect(f"127.0.0.1:{port}")
        fresh.request(1, "ServerLive", b"")
        reply = await fresh.reply(1)
        await fresh.close()
        await server.stop(0)
        return reply

    reply = asyncio.run(go())
    assert (reply.status, reply.payload(), problems) == ("0", b"ok", [])


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests_get_the_same_answer(
    server: Running, algorithm: str
) -> None:
    tensor = tgrpc.InferInput("sequence", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([b"CGACCGAACTCC" + b"A" * 38, b"ACGT" * 12 + b"AC"]))
    client = tgrpc.InferenceServerClient(server.grpc)
    plain = client.infer("primer-binding", [tensor]).as_numpy("probabilities")
    packed = client.infer("primer-binding", [tensor], compression_algorithm=algorithm)
    np.testing.assert_array_equal(packed.as_numpy("probabilities"), plain)
