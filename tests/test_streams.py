"""harness.loadgen.streams: the SSE parser at awkward byte boundaries, and K streams measured
against tests.support.longserver (a server whose events come at known times)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import httptools
import pytest

from harness.errors import UsageError
from harness.loadgen.sse import EventScanner, StreamParser
from harness.loadgen.streams import (
    StreamResult,
    measure_streams,
    stream_url,
)
from tests.support.longserver import LongServer, chunk, event_bytes

# The test server wakes on asyncio's timers (within a millisecond) on a shared, unpinned
# machine; the bound for a 50 ms interval is 2 ms.
GAP_TOLERANCE_MS = 2.0
FIRST_EVENT_MAX_MS = 10.0  # "at once": a connect, a request and a write on loopback

LF_BODY = b"id: 0\ndata: a\n\n: keep-alive\n\ndata: b\ndata: c\n\n\n\nevent: x\ndata: d\n\n"
LF_EVENTS = 3  # the comment-only block and the extra blank lines are no events


def _body(ending: bytes) -> bytes:
    return LF_BODY.replace(b"\n", ending)


def _fed(scanner: EventScanner, pieces: list[bytes]) -> list[int]:
    """The running count of events after each piece."""
    total, counts = 0, []
    for piece in pieces:
        total += scanner.feed(piece)
        counts.append(total)
    return counts


def _at_once(data: bytes) -> int:
    return EventScanner().feed(data)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_scanner_counts_events_whatever_the_pieces(ending: bytes) -> None:
    body = _body(ending)
    assert _at_once(body) == LF_EVENTS
    # one byte at a time: after each byte, as many events as in the prefix read at once
    counts = _fed(EventScanner(), [body[i:i + 1] for i in range(len(body))])
    assert counts == [_at_once(body[:i + 1]) for i in range(len(body))]
    assert counts[-1] == LF_EVENTS
    # every split in two, and in three around the line endings
    for cut in range(len(body) + 1):
        assert sum(_fed(EventScanner(), [body[:cut], body[cut:]])[-1:]) == LF_EVENTS, cut
    for cut in range(1, len(body) - 1):
        pieces = [body[:cut], body[cut:cut + 1], body[cut + 1:]]
        assert _fed(EventScanner(), pieces)[-1] == LF_EVENTS, cut


def test_scanner_a_crlf_split_between_pieces_is_one_line_end() -> None:
    scanner = EventScanner()
    assert scanner.feed(b"data: a\r") == 0
    assert scanner.feed(b"\n") == 0  # the LF of the same CRLF: no blank line yet
    assert scanner.feed(b"\r") == 1  # the blank line ends the event
    assert scanner.feed(b"\n") == 0
    assert scanner.feed(b"\r\n") == 0  # a second blank line: no event
    assert scanner.feed(b":comment\r\n\r\n") == 0
    assert scanner.feed(b"data: b\n") == 0 and scanner.feed(b"\n") == 1


def _response(head: str, body: bytes) -> bytes:
    return ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + head + "\r\n").encode() \
        + body


def _chunked(events: list[bytes], sizes: tuple[int, ...]) -> bytes:
    """The events' bytes cut into chunks of ``sizes`` (cycled), across event boundaries, one
    with an extension, then the last chunk."""
    data = b"".join(events)
    out, at, k = b"", 0, 0
    while at < len(data):
        size = sizes[k % len(sizes)]
        piece = data[at:at + size]
        out += chunk(piece) if k % 3 else f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
        at, k = at + size, k + 1
    return out + b"0\r\n\r\n"


def _parse(raw: bytes, pieces: list[int]) -> tuple[StreamParser, int]:
    parser, events, at = StreamParser(), 0, 0
    for size in [*pieces, len(raw)]:
        events += parser.feed(raw[at:at + size])
        at += size
        if at >= len(raw):
            break
    return parser, events


EVENTS = [event_bytes(i) for i in range(5)]


@pytest.mark.parametrize("sizes", [(7,), (3, 20, 1), (1000,)], ids=["7", "3-20-1", "whole"])
def test_parser_chunked_body_at_every_split(sizes: tuple[int, ...]) -> None:
    raw = _response("Transfer-Encoding: chunked\r\n", _chunked(EVENTS, sizes))
    for cut in range(1, len(raw)):
        parser, events = _parse(raw, [cut])
        assert (events, parser.status, parser.framing, parser.complete) \
            == (5, 200, "chunked", True), cut
    parser, events = _parse(raw, [1] * len(raw))
    assert events == 5 and parser.complete


def test_parser_close_delimited_body_at_every_split() -> None:
    raw = _response("Connection: close\r\n", b"".join(EVENTS).replace(b"\n", b"\r\n"))
    for cut in range(1, len(raw)):
        parser, events = _parse(raw, [cut])
        assert (events, parser.framing, parser.complete) == (5, "close", False), cut
    parser, events = _parse(raw, [1] * len(raw))
    assert events == 5


def test_parser_content_length_and_a_cut_body() -> None:
    body = b"".join(EVENTS)
    parser, events = _parse(_response(f"Content-Length: {len(body)}\r\n", body), [10, 50])
    assert (events, parser.framing, parser.complete) == (5, "length", True)
    # a chunked body that stops mid-chunk: the events before are counted, it is not complete
    raw = _response("Transfer-Encoding: chunked\r\n", _chunked(EVENTS, (40,)))
    parser, events = _parse(raw[:len(raw) * 2 // 3], [13])
    assert 0 < events < 5 and not parser.complete


def test_parser_counts_no_event_in_an_error_answer_and_rejects_garbage() -> None:
    raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 15\r\n\r\ndata: x\n\ndata:\n"
    parser, events = _parse(raw, [5])
    assert parser.status == 404 and events == 0
    with pytest.raises(httptools.HttpParserError):
        StreamParser().feed(b"NOT HTTP AT ALL\r\n\r\n")


def test_stream_url_keeps_the_query_and_sets_events_and_interval() -> None:
    assert stream_url("http://127.0.0.1:8000", events=20, interval_ms=100) \
        == ("127.0.0.1", "127.0.0.1:8000", 8000, "/stream?events=20&interval_ms=100")
    assert stream_url("http://localhost:81/s?events=3&x=1", events=5, interval_ms=2.5)[3] \
        == "/s?x=1&events=5&interval_ms=2.5"
    with pytest.raises(UsageError, match="WebSocket"):
        stream_url("ws://127.0.0.1:8000/stream", events=1, interval_ms=1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"streams": 0}, "streams must be"),
    ({"streams": 10_001}, "streams must be"),
    ({"events": 0}, "events must be"),
    ({"interval_ms": -1.0}, "interval_ms must be"),
    ({"interval_ms": float("nan")}, "interval_ms must be"),
    ({"events": 10_000, "interval_ms": 60_000.0}, "lasts over"),
    ({"timeout_s": 0.0}, "timeout_s must be"),
])
def test_bad_arguments_are_one_line_usage_errors(kwargs: dict[str, float], message: str) -> None:
    args: dict[str, float] = {"streams": 1, "events": 1, "interval_ms": 10.0, "timeout_s": 1.0}
    args.update(kwargs)
    with pytest.raises(UsageError, match=message):
        measure_streams("http://127.0.0.1:1/stream", **args)  # type: ignore[arg-type]


# --- against the test server --------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LongServer]:
    with LongServer() as srv:
        yield srv


def _pct(value: float | None) -> float:
    assert value is not None
    return value


def _all_accounted(result: StreamResult) -> None:
    assert result.completed + result.cut + result.never_started == result.streams
    assert result.errors["total"] == result.cut + result.never_started
    data = result.to_dict()
    for key in ("gap_ms", "first_event_ms"):
        figures = data[key]
        assert isinstance(figures, dict) and set(figures) >= {"p50", "p99", "max"}


@pytest.mark.e2e
def test_flushed_events_arrive_at_the_declared_interval(server: LongServer) -> None:
    cpu = min(os.sched_getaffinity(0))
    result = measure_streams(server.url + "stream", streams=4, events=10, interval_ms=50,
                             cpus=(cpu,))
    _all_accounted(result)
    assert result.completed == 4 and result.events_received == 40
    assert abs(_pct(result.gap_ms["p50"]) - 50.0) <= GAP_TOLERANCE_MS, result.gap_ms
    assert result.gap.get_total_count() == 4 * 9
    assert _pct(result.first_event_ms["p50"]) < FIRST_EVENT_MAX_MS, result.first_event_ms
    assert result.max_concurrent == 4


@pytest.mark.e2e
def test_a_buffered_stream_is_told_apart_from_a_flushed_one(server: LongServer) -> None:
    result = measure_streams(server.url + "stream-buffered", streams=4, events=10,
                             interval_ms=50)
    _all_accounted(result)
    assert result.completed == 4
    # every event in one piece: 0 apart, and the first as late as the whole stream (450 ms)
    assert _pct(result.gap_ms["p99"]) < 1.0, result.gap_ms
    assert 440.0 <= _pct(result.first_event_ms["p50"]) < 450.0 + 100.0, result.first_event_ms


@pytest.mark.e2e
def test_many_streams_all_complete_at_once(server: LongServer) -> None:
    result = measure_streams(server.url + "stream", streams=50, events=10, interval_ms=20)
    _all_accounted(result)
    assert result.completed == 50 and result.errors["total"] == 0
    assert result.max_concurrent == result.peak_connections == 50
    assert server.open_connections == 0


@pytest.mark.e2e
@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_server_that_stops_halfway_cuts_every_stream(server: LongServer,
                                                       framing: str) -> None:
    result = measure_streams(server.url + f"stream?cut_after=5&framing={framing}", streams=5,
                             events=10, interval_ms=20)
    _all_accounted(result)
    assert (result.completed, result.cut, result.never_started) == (0, 5, 0)
    assert result.events_received == 25
    # chunked: the last chunk never came (io); close-delimited: the body ended short (body)
    assert result.errors["io" if framing == "chunked" else "body"] == 5, result.errors


@pytest.mark.e2e
def test_a_close_delimited_stream_completes(server: LongServer) -> None:
    result = measure_streams(server.url + "stream?framing=close", streams=3, events=5,
                             interval_ms=20)
    assert result.completed == 3 and result.errors["total"] == 0


@pytest.mark.e2e
def test_w_workers_hold_w_streams_at_once() -> None:
    with LongServer(workers=3) as server:
        result = measure_streams(server.url + "stream", streams=6, events=5, interval_ms=40)
    _all_accounted(result)
    assert result.completed == 6
    assert result.max_concurrent == 3  # the second three waited for the first three
    assert result.peak_connections == 6
    # the waiting three started one stream (160 ms) late
    assert _pct(result.first_event_ms["max"]) > 150.0


@pytest.mark.e2e
def test_a_stream_with_no_first_event_in_time_never_started() -> None:
    with LongServer(workers=1) as server:
        result = measure_streams(server.url + "stream", streams=2, events=6, interval_ms=100,
                                 timeout_s=0.3)
    _all_accounted(result)
    assert (result.completed, result.never_started) == (1, 1)
    assert result.errors["timeout"] == 1
    assert result.duration_s < 0.5 + 0.3 + 0.5  # bounded by (N - 1) * M + timeout


@pytest.mark.e2e
def test_an_error_status_and_a_refused_connect_never_start(server: LongServer) -> None:
    result = measure_streams(server.url + "nowhere", streams=2, events=3, interval_ms=10)
    assert result.never_started == 2 and result.errors["status"] == 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it
    result = measure_streams(f"http://127.0.0.1:{port}/stream", streams=2, events=3,
                             interval_ms=10, timeout_s=1.0)
    assert result.never_started == 2 and result.errors["connect"] == 2
