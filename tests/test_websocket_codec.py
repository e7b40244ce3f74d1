"""The generator's WebSocket codec (harness/loadgen/websocket.py) against RFC 6455 and websockets.

Unit tests feed bytes made by ``websockets``' own frame serializer (an independent
implementation) into our parser, and parse our masked client frames with it. The end-to-end
test echoes through the raw ASGI app on uvicorn.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from harness.loadgen import websocket as ws
from harness.loadgen.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameEncoder,
    FrameParser,
    ProtocolError,
)
from harness.loadgen.wsprotocol import WsClientProtocol, WsEchoProtocol

RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """An unmasked server frame, serialized by websockets (which refuses to set RSV1 itself)."""
    data = Frame(Opcode(opcode), payload, fin=fin).serialize(mask=False)
    return bytes((data[0] | 0x40,)) + data[1:] if rsv1 else data


def parse_client_frames(data: bytes) -> list[Frame]:
    """Every frame in ``data``, parsed by websockets as a server would (masks required)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
        else:
            raise AssertionError("incomplete client frame")
    return frames


class Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[int, bytes]] = []

    def __call__(self, opcode: int, payload: bytes) -> None:
        self.messages.append((opcode, payload))


def parser_and_messages(max_size: int = ws.DEFAULT_MAX_SIZE_BYTES
                        ) -> tuple[FrameParser, list[tuple[int, bytes]]]:
    collect = Collect()
    return FrameParser(collect, max_size=max_size), collect.messages


# --- handshake -------------------------------------------------------------------------------


def test_accept_value_matches_the_rfc_example() -> None:
    assert ws.accept_value(RFC_KEY) == RFC_ACCEPT


def test_new_key_is_16_random_bytes_in_base64() -> None:
    import base64
    keys = {ws.new_key() for _ in range(10)}
    assert len(keys) == 10
    assert all(len(base64.b64decode(key)) == 16 for key in keys)


def test_handshake_request_offers_no_extension() -> None:
    request = ws.handshake_request("127.0.0.1:8000", "/ws/echo", RFC_KEY)
    head = request.decode("latin-1")
    assert head.startswith("GET /ws/echo HTTP/1.1\r\n")
    assert head.endswith("\r\n\r\n")
    assert "Host: 127.0.0.1:8000\r\n" in head
    assert "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" in head
    assert "Sec-WebSocket-Version: 13\r\n" in head
    assert "Upgrade: websocket\r\n" in head and "Connection: Upgrade\r\n" in head
    assert "extensions" not in head.lower() and "protocol:" not in head.lower()


def response(status: str = "101 Switching Protocols", *extra: str,
             accept: bytes = RFC_ACCEPT) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Accept: {accept.decode()}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_handshake_response_accepted_and_frames_after_it_kept() -> None:
    head = response("101 Switching Protocols", "Server: test")
    trailing = server_frame(OP_BINARY, b"early")
    assert ws.parse_handshake_response(head[:-1], RFC_KEY) is None  # not complete yet
    assert ws.parse_handshake_response(head + trailing, RFC_KEY) == (len(head), None)


def test_handshake_header_names_and_tokens_are_case_insensitive() -> None:
    head = (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
            b"connection: keep-alive, upgrade\r\nsec-websocket-accept: " + RFC_ACCEPT +
            b"\r\n\r\n")
    assert ws.parse_handshake_response(head, RFC_KEY) == (len(head), None)


@pytest.mark.parametrize(("head", "reason"), [
    (response("403 Forbidden"), "refused: status 403 Forbidden"),
    (response("200 OK"), "refused: status 200 OK"),
    (response(accept=b"wrong="), "Sec-WebSocket-Accept 'wrong='"),
    (response("101 Switching Protocols", "Sec-WebSocket-Extensions: permessage-deflate"),
     "server chose extensions 'permessage-deflate', none were offered"),
    (b"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n\r\n", "without 'Upgrade: websocket'"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
])
def test_handshake_refusals_say_why(head: bytes, reason: str) -> None:
    parsed = ws.parse_handshake_response(head, RFC_KEY)
    assert parsed is not None
    assert parsed[1] is not None and reason in parsed[1]


# --- frames: our encoder, websockets' parser -------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 64, 125, 126, 127, 8192, 65535, 65536, 200_000])
def test_masked_frames_round_trip_through_websockets(size: int) -> None:
    payload = os.urandom(size)
    encoder = FrameEncoder()
    data = encoder.frame(OP_BINARY, payload) + encoder.frame(OP_TEXT, b"\xe2\x9c\x93")
    frames = parse_client_frames(data)
    assert [(f.opcode, f.data, f.fin) for f in frames] == [
        (Opcode.BINARY, payload, True), (Opcode.TEXT, b"\xe2\x9c\x93", True)]


@pytest.mark.parametrize(("size", "header_bytes"), [(125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_length_encodings(size: int, header_bytes: int) -> None:
    frame = ws.encode_frame(OP_BINARY, bytes(size), mask_key=b"\x01\x02\x03\x04")
    assert len(frame) == header_bytes + 4 + size
    assert frame[header_bytes:header_bytes + 4] == b"\x01\x02\x03\x04"


def test_encode_frame_masks_like_websockets() -> None:
    key = b"\xa1\xb2\xc3\xd4"
    payload = os.urandom(300)
    frame = ws.encode_frame(OP_BINARY, payload, mask_key=key)
    from websockets.utils import apply_mask as reference_mask  # the pure-Python version
    assert frame[8:] == reference_mask(payload, key)
    assert parse_client_frames(frame)[0].data == payload


def test_non_final_frame_and_close_frame() -> None:
    frames = parse_client_frames(
        ws.encode_frame(OP_TEXT, b"he", mask_key=b"abcd", fin=False)
        + ws.encode_frame(0, b"llo", mask_key=b"efgh")
        + FrameEncoder().close(1001, "bye"))
    assert [(f.opcode, f.fin) for f in frames] == [
        (Opcode.TEXT, False), (Opcode.CONT, True), (Opcode.CLOSE, True)]
    assert frames[2].data == b"\x03\xe9bye"


def test_every_frame_gets_a_fresh_mask_key() -> None:
    encoder = FrameEncoder()
    keys = [encoder.frame(OP_BINARY, b"x")[2:6] for _ in range(3000)]  # spans 3 key blocks
    assert len(set(keys)) > 2990  # 32-bit keys: a repeat or two by chance at most


# --- frames: websockets' serializer, our parser ----------------------------------------------


def test_several_frames_in_one_read() -> None:
    parser, messages = parser_and_messages()
    parser.feed(server_frame(OP_BINARY, b"one") + server_frame(OP_TEXT, b"two")
                + server_frame(OP_BINARY, b"x" * 300) + server_frame(OP_BINARY, b""))
    assert messages == [(OP_BINARY, b"one"), (OP_TEXT, b"two"), (OP_BINARY, b"x" * 300),
                        (OP_BINARY, b"")]
    assert parser.buffered == 0


def test_frames_split_byte_by_byte() -> None:
    payloads = [b"a", os.urandom(125), os.urandom(126), os.urandom(70_000), b"tail"]
    data = b"".join(server_frame(OP_BINARY, p) for p in payloads)
    parser, messages = parser_and_messages()
    for i in range(len(data)):
        parser.feed(data[i:i + 1])
    assert messages == [(OP_BINARY, p) for p in payloads]
    assert parser.buffered == 0


def test_frames_split_at_every_point() -> None:
    data = server_frame(OP_BINARY, b"x" * 200) + server_frame(OP_TEXT, b"yz")
    for cut in range(1, len(data)):
        parser, messages = parser_and_messages()
        parser.feed(data[:cut])
        parser.feed(data[cut:])
        assert messages == [(OP_BINARY, b"x" * 200), (OP_TEXT, b"yz")], cut


@pytest.mark.parametrize("size", [126, 65535, 65536, 1_000_000])
def test_16_and_64_bit_lengths(size: int) -> None:
    payload = os.urandom(size)
    parser, messages = parser_and_messages()
    parser.feed(server_frame(OP_BINARY, payload))
    assert messages == [(OP_BINARY, payload)]


def test_fragmented_message_with_a_ping_between_fragments() -> None:
    parser, messages = parser_and_messages()
    data = (server_frame(OP_TEXT, b"hel", fin=False) + server_frame(OP_PING, b"are you there")
            + server_frame(0, b"lo ", fin=False) + server_frame(0, b"world"))
    for i in range(0, len(data), 5):
        parser.feed(data[i:i + 5])
    assert messages == [(OP_PING, b"are you there"), (OP_TEXT, b"hello world")]


def test_control_frames_can_go_to_their_own_callback() -> None:
    data_messages, controls = Collect(), Collect()
    parser = FrameParser(data_messages, on_control=controls)
    parser.feed(server_frame(OP_PONG, b"p") + server_frame(OP_BINARY, b"d"))
    assert data_messages.messages == [(OP_BINARY, b"d")]
    assert controls.messages == [(OP_PONG, b"p")]


def test_close_frame_with_code_and_reason_ends_parsing() -> None:
    parser, messages = parser_and_messages()
    close = server_frame(OP_CLOSE, (1001).to_bytes(2, "big") + "going away ✓".encode())
    parser.feed(server_frame(OP_BINARY, b"last") + close + server_frame(OP_BINARY, b"after"))
    assert messages[0] == (OP_BINARY, b"last")
    assert messages[1][0] == OP_CLOSE
    assert ws.parse_close(messages[1][1]) == (1001, "going away ✓")
    assert len(messages) == 2
    parser.feed(server_frame(OP_BINARY, b"later"))
    assert len(messages) == 2


def test_parse_close() -> None:
    assert ws.parse_close(b"") == (ws.CLOSE_NO_STATUS, "")
    assert ws.parse_close(ws.close_payload(1000)) == (1000, "")
    for bad in (b"\x03", (999).to_bytes(2, "big"), (1005).to_bytes(2, "big"),
                (1000).to_bytes(2, "big") + b"\xff"):
        with pytest.raises(ProtocolError):
            ws.parse_close(bad)


@pytest.mark.parametrize(("data", "reason"), [
    (Frame(Opcode.BINARY, b"x").serialize(mask=True), "masked frame from the server"),
    (server_frame(OP_BINARY, b"x", rsv1=True), "reserved bits"),
    (b"\x83\x00", "unknown opcode 0x3"),
    (server_frame(0, b"x"), "continuation frame without a message"),
    (server_frame(OP_TEXT, b"a", fin=False) + server_frame(OP_TEXT, b"b"),
     "new data frame inside a fragmented message"),
    (b"\x09\x01x", "fragmented control frame"),
    (b"\x89\x7e\x00\x7e" + b"x" * 126, "control frame of 126 bytes"),
    (b"\x82\x7f\x80" + bytes(7), "most significant bit"),
    (server_frame(OP_CLOSE, b"\x03"), "1-byte payload"),
])
def test_protocol_errors(data: bytes, reason: str) -> None:
    parser, _ = parser_and_messages()
    with pytest.raises(ProtocolError, match=reason) as caught:
        parser.feed(data)
    assert caught.value.kind == ws.ERROR_PROTOCOL
    assert caught.value.close_code == ws.CLOSE_PROTOCOL_ERROR


def test_oversized_frame_is_refused_from_its_header() -> None:
    parser, messages = parser_and_messages(max_size=1000)
    parser.feed(server_frame(OP_BINARY, b"x" * 1000))
    header_only = server_frame(OP_BINARY, b"x" * 70_000)[:10]  # the payload never arrives
    with pytest.raises(ProtocolError, match="frame of 70000 bytes") as caught:
        parser.feed(header_only)
    assert caught.value.close_code == ws.CLOSE_TOO_BIG
    assert messages == [(OP_BINARY, b"x" * 1000)]


def test_oversized_fragmented_message_is_refused() -> None:
    parser, _ = parser_and_messages(max_size=1000)
    parser.feed(server_frame(OP_BINARY, b"x" * 600, fin=False))
    with pytest.raises(ProtocolError, match="message of more than 1000 bytes"):
        parser.feed(server_frame(0, b"x" * 600))


# --- the connection protocol, on a fake transport --------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Recorder(WsClientProtocol):
    def __init__(self) -> None:
        super().__init__("example:80", "/ws/echo")
        self.events: list[tuple[str, object]] = []

    def on_open(self) -> None:
        self.events.append(("open", None))

    def on_data(self, opcode: int, payload: bytes) -> None:
        self.events.append(("data", (opcode, payload)))
        self.send(opcode, payload)

    def on_failed(self, kind: str, reason: str) -> None:
        self.events.append(("failed", (kind, reason)))

    def on_closed(self) -> None:
        self.events.append(("closed", None))


def opened(protocol: Recorder) -> FakeTransport:
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    assert transport.written.startswith(b"GET /ws/echo HTTP/1.1\r\n")
    transport.written.clear()
    accept = ws.accept_value(protocol.key)
    protocol.data_received(response(accept=accept) + server_frame(OP_BINARY, b"early"))
    return transport


def test_protocol_opens_answers_pings_and_batches_writes() -> None:
    protocol = Recorder()
    transport = opened(protocol)
    assert protocol.events == [("open", None), ("data", (OP_BINARY, b"early"))]
    transport.written.clear()
    protocol.data_received(server_frame(OP_BINARY, b"a") + server_frame(OP_PING, b"hb")
                           + server_frame(OP_TEXT, b"b"))
    frames = parse_client_frames(bytes(transport.written))
    assert [(f.opcode, f.data) for f in frames] == [
        (Opcode.BINARY, b"a"), (Opcode.PONG, b"hb"), (Opcode.TEXT, b"b")]


def test_protocol_answers_a_server_close() -> None:
    protocol = Recorder()
    transport = opened(protocol)
    transport.written.clear()
    protocol.data_received(server_frame(OP_CLOSE, ws.close_payload(1001, "restart")))
    assert protocol.events[-1] == ("failed", ("closed", "server closed with code 1001 (restart)"))
    assert [(f.opcode, f.data) for f in parse_client_frames(bytes(transport.written))] == [
        (Opcode.CLOSE, (1001).to_bytes(2, "big"))]
    assert transport.closed
    protocol.connection_lost(None)
    assert protocol.events[-1][0] == "failed"  # reported once


def test_protocol_client_close_is_not_an_error() -> None:
    protocol = Recorder()
    transport = opened(protocol)
    transport.written.clear()
    protocol.close()
    assert parse_client_frames(bytes(transport.written))[0].opcode == Opcode.CLOSE
    protocol.data_received(server_frame(OP_CLOSE, ws.close_payload(1000)))
    assert transport.closed
    protocol.connection_lost(None)
    assert protocol.events[-1] == ("closed", None)


def test_protocol_reports_a_refused_handshake() -> None:
    protocol = Recorder()
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert protocol.events == [("failed", ("handshake", "refused: status 403 Forbidden"))]
    assert transport.closed


def test_protocol_fails_on_a_protocol_error_with_close_1002() -> None:
    protocol = Recorder()
    transport = opened(protocol)
    transport.written.clear()
    protocol.data_received(server_frame(OP_BINARY, b"x", rsv1=True))
    assert protocol.events[-1][0] == "failed"
    assert protocol.events[-1][1][0] == "protocol"  # type: ignore[index]
    assert parse_client_frames(bytes(transport.written))[0].data[:2] == b"\x03\xea"
    assert transport.closed


def test_protocol_reports_eof_without_close_frame() -> None:
    protocol = Recorder()
    opened(protocol)
    protocol.connection_lost(None)
    assert protocol.events[-1] == ("failed", ("closed", "connection closed by the server "
                                              "without a close frame"))


def test_echo_protocol_counts_echoes_and_wrong_echoes() -> None:
    async def run() -> tuple[WsEchoProtocol, FakeTransport]:
        protocol = WsEchoProtocol("example:80", "/ws/echo", b"m" * 200)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(response(accept=ws.accept_value(protocol.key)))
        echo = server_frame(OP_BINARY, b"m" * 200)
        protocol.data_received(echo)  # the fast path: exactly the echo
        protocol.data_received(echo[:3])  # split: the parser
        protocol.data_received(echo[3:])
        protocol.data_received(server_frame(OP_BINARY, b"n" * 200))  # wrong bytes
        protocol.data_received(server_frame(OP_TEXT, b"m" * 200))  # wrong type
        return protocol, transport

    protocol, transport = asyncio.run(run())
    assert protocol.count == 2 and len(protocol.latencies_ns) == 2
    assert protocol.errors == {ws.ERROR_ECHO: 2}
    sent = parse_client_frames(bytes(transport.written[transport.written.index(b"\r\n\r\n") + 4:]))
    assert [(f.opcode, f.data) for f in sent] == [(Opcode.BINARY, b"m" * 200)] * 5


# --- fairness: every server runs the protocol the client speaks ----------------------------


def test_every_websocket_server_records_its_ping_and_compression_settings() -> None:
    from harness.catalogue import SERVERS, make_target, render_command

    for server in SERVERS.values():
        record = make_target(server, cpus=1).to_dict()
        assert record["websocket_settings"] == list(server.websocket_settings)
        if not server.websocket:
            assert server.websocket_settings == ()
            continue
        notes = " ".join(server.websocket_settings)
        assert "pings" in notes and "deflate" in notes, server.name
        argv = render_command(make_target(server, cpus=1), port=8000)
        for note in server.websocket_settings:
            flag = note.partition(": ")[2].split(" ")[0]
            if flag.startswith("--"):  # a setting made by a flag is in the command
                assert flag in argv, (server.name, flag)


def test_the_client_records_what_it_offers() -> None:
    assert any("no permessage-deflate" in note for note in ws.CLIENT_SETTINGS)
    assert any("pings sent: none" in note for note in ws.CLIENT_SETTINGS)


# --- end to end: the raw ASGI app on uvicorn --------------------------------------------------


@pytest.fixture(scope="module")
def uvicorn_url() -> Iterator[str]:
    from harness.backends.local import start_target
    from harness.catalogue import get_server, make_target

    cpus = (1,) if (os.cpu_count() or 1) > 1 else (0,)
    with start_target(make_target(get_server("uvicorn"), cpus=1), cpus=cpus) as server:
        yield server.url


async def echo_through(url: str, message: bytes, *, text: bool, count: int) -> WsEchoProtocol:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: WsEchoProtocol(f"{host}:{port}", "/ws/echo", message, text=text, messages=count),
        host, int(port))
    await asyncio.wait_for(protocol.opened, 10)
    await asyncio.wait_for(protocol.idle, 10)
    protocol.close()
    return protocol


@pytest.mark.e2e
@pytest.mark.parametrize("size", [64, 8192])
@pytest.mark.parametrize("text", [False, True])
def test_echo_against_uvicorn(uvicorn_url: str, size: int, text: bool) -> None:
    message = (b"a" * size) if text else os.urandom(size)
    protocol = asyncio.run(echo_through(uvicorn_url, message, text=text, count=100))
    assert protocol.errors == {}, protocol.last_error
    assert protocol.count == 100
    assert len(protocol.latencies_ns) == 100 and min(protocol.latencies_ns) > 0


@pytest.mark.e2e
def test_handshake_refused_on_an_unknown_path(uvicorn_url: str) -> None:
    async def attempt() -> WsEchoProtocol:
        host, _, port = uvicorn_url.removeprefix("http://").rstrip("/").partition(":")
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: WsEchoProtocol(f"{host}:{port}", "/no-such-path", b"x"), host, int(port))
        await asyncio.wait_for(protocol.opened, 10)
        return protocol

    protocol = asyncio.run(attempt())
    assert protocol.errors == {ws.ERROR_HANDSHAKE: 1}
    assert protocol.last_error.startswith("refused: status 403")


@pytest.mark.e2e
def test_broadcast_reaches_subscribers_not_the_publisher(uvicorn_url: str) -> None:
    from harness.verify import verify_target

    report = verify_target(uvicorn_url, websocket=True, io=False)
    checks = {c.name: c for c in report.checks}
    assert checks["ws_broadcast"].ok, checks["ws_broadcast"].detail
    assert "reached 8 subscriber(s)" in checks["ws_broadcast"].detail  # one worker: all 8


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/ws/broadcast", "/ws/broadcast?role=listener"])
def test_broadcast_without_a_role_is_refused(uvicorn_url: str, path: str) -> None:
    async def attempt() -> WsEchoProtocol:
        host, _, port = uvicorn_url.removeprefix("http://").rstrip("/").partition(":")
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: WsEchoProtocol(f"{host}:{port}", path, b"x"), host, int(port))
        await asyncio.wait_for(protocol.opened, 10)
        return protocol

    protocol = asyncio.run(attempt())
    assert protocol.last_error.startswith("refused: status 403")
