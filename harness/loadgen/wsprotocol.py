"""The WebSocket client's connections: one asyncio Protocol per connection (handshake, then
frames, over the codec in harness.loadgen.websocket), and the echo load's fast path.
"""

from __future__ import annotations

import asyncio
import sys
from array import array
from time import monotonic_ns
from typing import cast

from harness.loadgen.websocket import (
    CLOSE_NO_STATUS,
    CLOSE_NORMAL,
    DEFAULT_MAX_SIZE_BYTES,
    ERROR_CLOSED,
    ERROR_ECHO,
    ERROR_HANDSHAKE,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameEncoder,
    FrameParser,
    HandshakeError,
    WebSocketError,
    handshake_request,
    new_key,
    parse_close,
    parse_handshake_response,
    server_frame,
)

# --- a connection --------------------------------------------------------------------------


class WsClientProtocol(asyncio.Protocol):
    """One client connection: handshake, then frames; subclasses are the load models.

    Override ``on_open`` (the upgrade was accepted), ``on_data(opcode, payload)`` (a text or
    binary message) and ``on_failed(kind, reason)`` (the connection ended before ``close``
    was asked: a refused handshake, a close frame or EOF from the server, a protocol error).
    ``send`` queues a frame; frames queued inside ``data_received`` go out together in one
    write when it returns, others at the next ``flush`` (call it after sending from a timer).
    Pings are answered with pongs; a server's close is answered and the transport closed.
    """

    def __init__(self, host_header: str, path: str, *,
                 max_size: int = DEFAULT_MAX_SIZE_BYTES) -> None:
        self.host_header = host_header
        self.path = path
        self.key = new_key()
        self.encoder = FrameEncoder()
        # on_data is bound here, so a subclass's override is called straight from the parser.
        self.parser = FrameParser(self.on_data, on_control=self._on_control, max_size=max_size)
        self.transport: asyncio.Transport | None = None
        self.is_open = False
        self.closing = False  # close() was called: the end is expected
        self.done = False  # on_failed or on_closed has been called
        self.close_code: int | None = None
        self._head = bytearray()
        self._out: list[bytes] = []

    # to override

    def on_open(self) -> None:
        pass

    def on_data(self, opcode: int, payload: bytes) -> None:
        pass

    def on_failed(self, kind: str, reason: str) -> None:
        pass

    def on_closed(self) -> None:
        """The connection ended after ``close()`` was asked."""

    # the public API

    def send(self, opcode: int, payload: bytes) -> None:
        self._out.append(self.encoder.frame(opcode, payload))

    def flush(self) -> None:
        out = self._out
        if out and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the server's close frame or EOF ends it."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        if self.is_open:
            self._out.append(self.encoder.close(code, reason))
            self.flush()
        else:
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not derive from asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(handshake_request(self.host_header, self.path, self.key))

    def data_received(self, data: bytes) -> None:
        try:
            if self.is_open:
                self.parser.feed(data)
            else:
                self._handshake(data)
        except WebSocketError as exc:
            self._fail(exc.kind, exc.reason, exc.close_code)
        out = self._out  # flush(), inlined: this is once per read
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
            out.clear()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports the end

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.closing or self.done:
            self._finish()
            return
        if not self.is_open:
            self._end(ERROR_HANDSHAKE, "connection closed before the handshake answer"
                      + (f" ({exc})" if exc else ""))
        else:
            self._end(ERROR_CLOSED, "connection closed by the server without a close frame"
                      + (f" ({exc})" if exc else ""))

    # inside

    def _handshake(self, data: bytes) -> None:
        self._head += data
        parsed = parse_handshake_response(self._head, self.key)
        if parsed is None:
            return
        consumed, failure = parsed
        if failure is not None:
            raise HandshakeError(failure)
        rest = bytes(self._head[consumed:])
        self._head = bytearray()
        self.is_open = True
        self.on_open()
        if rest:
            self.parser.feed(rest)

    def _on_control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._out.append(self.encoder.frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code, reason = parse_close(payload)
            self.close_code = code
            if not self.closing:
                # Echo the code back (RFC 6455 5.5.1) and let the server close the TCP.
                self._out.append(self.encoder.close(
                    CLOSE_NORMAL if code == CLOSE_NO_STATUS else code))
                self.flush()
                self._end(ERROR_CLOSED, f"server closed with code {code}"
                          + (f" ({reason})" if reason else ""))
                self.closing = True
            if self.transport is not None:
                self.transport.close()
        # OP_PONG: we send no pings, so a pong is unsolicited and ignored (RFC 6455 5.5.3)

    def _fail(self, kind: str, reason: str, close_code: int) -> None:
        if self.transport is not None and self.is_open and not self.closing:
            self._out.append(self.encoder.close(close_code))
            self.flush()
        self._end(kind, reason)
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _end(self, kind: str, reason: str) -> None:
        if not self.done:
            self.done = True
            self.on_failed(kind, reason)

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.on_closed()


class WsEchoProtocol(WsClientProtocol):
    """Closed-loop echo: one message in flight; the next goes out when the echo is back.

    Counts echoes, records each round trip in ``latencies_ns`` (when ``record``), and counts
    errors by kind in ``errors``. Sends ``messages`` messages (None: until ``stop``); ``idle``
    is resolved when the last echo is back (or the connection ended), ``opened`` when the
    upgrade was accepted (or refused).
    """

    def __init__(self, host_header: str, path: str, message: bytes, *, text: bool = False,
                 messages: int | None = None, record: bool = True,
                 max_size: int = DEFAULT_MAX_SIZE_BYTES) -> None:
        super().__init__(host_header, path, max_size=max_size)
        self.message = message
        self.opcode = OP_TEXT if text else OP_BINARY
        self.record = record
        self.count = 0
        self.latencies_ns = array("q")
        self.errors: dict[str, int] = {}
        self.last_error = ""
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.idle: asyncio.Future[None] = loop.create_future()
        self._sends_left = messages if messages is not None else sys.maxsize
        self._sent_ns = 0
        # The echo as it must arrive: a server frame is unmasked and its length is encoded in
        # the fewest bytes (RFC 6455 5.2), so its bytes are known in advance.
        self._echo_frame = server_frame(self.opcode, message)

    def stop(self) -> None:
        """Send nothing more: the message in flight is the last."""
        self._sends_left = 0

    def data_received(self, data: bytes) -> None:
        # The fast path: a read that is exactly the echo frame, with nothing buffered before
        # it, is the whole parse (a byte-for-byte compare). Anything else takes the parser.
        parser = self.parser
        if data == self._echo_frame and self._sends_left > 0 and not parser._buf \
                and not parser._frag_opcode and self.is_open:
            now = monotonic_ns()
            self.count += 1
            if self.record:
                self.latencies_ns.append(now - self._sent_ns)
            self._sent_ns = now
            self._sends_left -= 1
            self.transport.write(self.encoder.frame(self.opcode, self.message))  # type: ignore[union-attr]
            return
        super().data_received(data)

    def on_open(self) -> None:
        if not self.opened.done():
            self.opened.set_result(None)
        self._send_next(monotonic_ns())

    def _send_next(self, now: int) -> None:
        if self._sends_left <= 0:
            if not self.idle.done():
                self.idle.set_result(None)
            return
        self._sends_left -= 1
        self._sent_ns = now
        self.send(self.opcode, self.message)

    def on_data(self, opcode: int, payload: bytes) -> None:
        now = monotonic_ns()
        if payload == self.message and opcode == self.opcode:
            self.count += 1
            if self.record:
                self.latencies_ns.append(now - self._sent_ns)
        else:
            self.errors[ERROR_ECHO] = self.errors.get(ERROR_ECHO, 0) + 1
            self.last_error = (f"sent {len(self.message)} bytes (opcode {self.opcode}), got "
                               f"{len(payload)} (opcode {opcode})")
        self._send_next(now)

    def on_failed(self, kind: str, reason: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = reason
        self._resolve()

    def on_closed(self) -> None:
        self._resolve()

    def _resolve(self) -> None:
        for future in (self.opened, self.idle):
            if not future.done():
                future.set_result(None)
