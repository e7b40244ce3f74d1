"""Reading a server-sent event response fed in pieces of any size: the HTTP framing (status,
headers, chunked, Content-Length or close-delimited body, by httptools) and the events in it
(each ends at a blank line), for harness.loadgen.streams."""

from __future__ import annotations

import httptools


class EventScanner:
    """Counts server-sent events in a body fed in pieces of any size.

    An event is a block of lines ended by a blank line; lines end in CRLF, LF or CR (the SSE
    format allows all three, and a CRLF may be split between two pieces). A block of comment
    lines only (each starting with ``:``, a keep-alive) is not an event.
    """

    __slots__ = ("_after_cr", "_block", "_in_line", "_line_comment")

    def __init__(self) -> None:
        self._after_cr = False  # the last byte was CR: a LF next is the same line end
        self._in_line = False  # the current line has bytes
        self._line_comment = False  # ... and its first is ':'
        self._block = False  # the current block has a line that is not a comment

    def feed(self, data: bytes) -> int:
        """The events that ``data`` completes."""
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return 0
        self._after_cr = data[-1:] == b"\r"
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        events = 0
        for line in lines[:-1]:  # every complete line; the last element is the unfinished one
            if line or self._in_line:
                comment = self._line_comment if self._in_line else line[:1] == b":"
                self._block = self._block or not comment
                self._in_line = False
            else:  # a blank line ends the block
                events += self._block
                self._block = False
        tail = lines[-1]
        if tail and not self._in_line:
            self._in_line = True
            self._line_comment = tail[:1] == b":"
        return events


class StreamParser:
    """One streamed response: httptools reads the head and the framing, the body goes through
    an :class:`EventScanner`. :meth:`feed` returns the events a piece completed and raises
    ``httptools.HttpParserError`` on a malformed response."""

    __slots__ = ("_events", "_parser", "complete", "framing", "scanner", "status")

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.scanner = EventScanner()
        self.status: int | None = None  # once the head is complete
        self.framing = "close"  # "chunked", "length" or "close" (the body ends with the close)
        self.complete = False  # the body's end was read (last chunk, or Content-Length)
        self._events = 0

    def feed(self, data: bytes) -> int:
        self._events = 0
        self._parser.feed_data(data)
        return self._events

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            self.framing = "chunked"
        elif name == b"content-length" and self.framing == "close":
            self.framing = "length"

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        if self.status is not None and 200 <= self.status < 300:
            self._events += self.scanner.feed(data)

    def on_message_complete(self) -> None:
        self.complete = True
