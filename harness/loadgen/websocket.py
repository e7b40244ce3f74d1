"""The generator's WebSocket client (RFC 6455): handshake, frame codec, a Protocol-level connection.

Hand-written for the hot path, with the C masking of ``websockets.speedups.apply_mask``:

- ``handshake_request`` / ``parse_handshake_response``: the HTTP/1.1 upgrade over the same
  kind of raw connection the HTTP client uses. The client offers no extension (no
  permessage-deflate) and no subprotocol; a server that picks one anyway is refused.
- ``FrameParser``: incremental; one ``feed`` parses every complete frame in a read and calls
  back once per message (fragments joined, control frames passed through between them). A frame
  split across reads is kept in a buffer that grows only until the frame is complete.
- ``FrameEncoder``: masked client frames, a fresh key per frame from ``os.urandom`` (drawn in
  blocks, so unpredictable as RFC 6455 section 5.3 asks and still one syscall per 1,024 frames).
- ``WsClientProtocol``: an ``asyncio.Protocol`` that does the handshake, answers pings, replies
  to a close, and batches every frame queued during one read into one ``transport.write``.
  Load models subclass it; ``WsEchoProtocol`` is the closed-loop echo the benchmark uses.

The client never sends pings and never offers compression; ``CLIENT_SETTINGS`` says so in the
words a result records. Text payloads are not UTF-8 validated (echoes are compared byte for
byte instead, which is stricter).

Why not picows' Cython core: measured side by side (benchmarks/ws_client_vs_peers.py) this
client costs within a few percent of picows' CPU per message at 64 B and the same at 8 KiB, and
a profile puts about 90 % of its time in the kernel (the write and read syscalls and epoll),
which no codec changes. What remains in Python is one compare, one clock read and one masked
frame per echo (``WsEchoProtocol``'s fast path).

    parser = FrameParser(lambda opcode, payload: print(opcode, payload))
    parser.feed(b"\\x82\\x03abc")            # prints 2 b'abc'
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from typing import Final

try:
    from websockets.speedups import apply_mask
except ImportError:  # a platform without websockets' C extension: the pure-Python mask
    from websockets.utils import apply_mask

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
DATA_OPCODES: Final = frozenset({OP_TEXT, OP_BINARY})
CONTROL_OPCODES: Final = frozenset({OP_CLOSE, OP_PING, OP_PONG})

CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_TOO_BIG: Final = 1009
CLOSE_NO_STATUS: Final = 1005  # a close frame without a payload (never sent on the wire)

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFAULT_MAX_SIZE_BYTES: Final = 16 * 1024 * 1024  # per message, as uvicorn's --ws-max-size
MAX_CONTROL_PAYLOAD_BYTES: Final = 125
MAX_HANDSHAKE_HEAD_BYTES: Final = 64 * 1024
# 1,024 mask keys per os.urandom call: a getrandom syscall per frame would cost ~0.5 µs each.
MASK_KEY_BLOCK_BYTES: Final = 4 * 1024

# Errors by kind, as a WebSocket load model counts them.
ERROR_CONNECT: Final = "connect"  # TCP connect failed
ERROR_HANDSHAKE: Final = "handshake"  # the upgrade was refused or malformed
ERROR_CLOSED: Final = "closed"  # the server closed (close frame or TCP) before we did
ERROR_TIMEOUT: Final = "timeout"  # no answer in time
ERROR_ECHO: Final = "echo"  # the echo differed from what was sent
ERROR_PROTOCOL: Final = "protocol"  # a frame the RFC forbids (masked, reserved bits, too big)
ERROR_KINDS: Final = (ERROR_CONNECT, ERROR_HANDSHAKE, ERROR_CLOSED, ERROR_TIMEOUT, ERROR_ECHO,
                      ERROR_PROTOCOL)

# What every WebSocket result records about the client, so each server meets the same protocol.
CLIENT_SETTINGS: Final = (
    "extensions offered: none (no Sec-WebSocket-Extensions header, so no permessage-deflate)",
    "subprotocols offered: none",
    "pings sent: none (a server's pings are answered with pongs)",
    "client frames masked with a fresh os.urandom key per frame (RFC 6455 5.3)",
    "one frame per message (no client-side fragmentation)",
)

OnMessage = Callable[[int, bytes], None]


class WebSocketError(Exception):
    """A WebSocket failure; ``kind`` is one of ERROR_KINDS, the message says what was seen."""

    kind: str = ERROR_PROTOCOL
    close_code: int = CLOSE_PROTOCOL_ERROR

    def __init__(self, reason: str, *, kind: str | None = None,
                 close_code: int | None = None) -> None:
        super().__init__(reason)
        if kind is not None:
            self.kind = kind
        if close_code is not None:
            self.close_code = close_code

    @property
    def reason(self) -> str:
        return str(self.args[0])


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455; the connection must be failed (close code 1002 or 1009)."""


class HandshakeError(WebSocketError):
    kind = ERROR_HANDSHAKE


# --- handshake -----------------------------------------------------------------------------


def new_key() -> bytes:
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 4.1)."""
    return base64.b64encode(os.urandom(16))


def accept_value(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer to ``key``: base64(sha1(key + GUID))."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_request(host_header: str, path: str, key: bytes) -> bytes:
    """The upgrade request. It offers no extension and no subprotocol, on purpose."""
    return (f"GET {path} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode('ascii')}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n").encode("latin-1")


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def check_handshake_head(head: bytes, key: bytes) -> str | None:
    """None when ``head`` (the response up to, without, its blank line) accepts the upgrade
    asked with ``key``; otherwise why not, in one line (an error of kind "handshake")."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return f"not an HTTP/1.x status line: {lines[0][:80]!r}"
    if parts[1] != "101":
        reason = parts[2] if len(parts) > 2 else ""
        return f"refused: status {parts[1]} {reason}".rstrip()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return f"malformed header line {line[:80]!r}"
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        return f"status 101 without 'Upgrade: websocket' (got {headers.get('upgrade')!r})"
    if "upgrade" not in _tokens(headers.get("connection", "")):
        return f"status 101 without 'Connection: Upgrade' (got {headers.get('connection')!r})"
    expected = accept_value(key).decode("ascii")
    got = headers.get("sec-websocket-accept")
    if got != expected:
        return f"Sec-WebSocket-Accept {got!r}, expected {expected!r}"
    if headers.get("sec-websocket-extensions"):
        return (f"server chose extensions {headers['sec-websocket-extensions']!r}, none were "
                "offered")
    if headers.get("sec-websocket-protocol"):
        return (f"server chose subprotocol {headers['sec-websocket-protocol']!r}, none was "
                "offered")
    return None


def parse_handshake_response(buffer: bytes | bytearray,
                             key: bytes) -> tuple[int, str | None] | None:
    """Look for the complete response head in ``buffer`` (what was read so far).

    None: not complete yet, read more. Otherwise ``(consumed, failure)``: the bytes the head
    took (anything after them is already WebSocket frames) and None when the upgrade was
    accepted, or the reason it was not.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HANDSHAKE_HEAD_BYTES:
            return len(buffer), f"response head larger than {MAX_HANDSHAKE_HEAD_BYTES} bytes"
        return None
    return end + 4, check_handshake_head(bytes(buffer[:end]), key)


# --- frames --------------------------------------------------------------------------------


def _head(first: int, length: int) -> bytes:
    """A masked client frame's header without the key: first byte, then the length."""
    if length < 126:
        return bytes((first, 0x80 | length))
    if length < 0x10000:
        return bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    return bytes((first, 0x80 | 127)) + length.to_bytes(8, "big")


# Headers of the small final frames, precomputed: index (opcode << 7) | length.
_SMALL_HEADS: Final = [_head(0x80 | (i >> 7), i & 0x7F) for i in range(16 << 7)]


def server_frame(opcode: int, payload: bytes) -> bytes:
    """A final unmasked frame as a server sends it (for tests and expected echoes)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 0x10000:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def encode_frame(opcode: int, payload: bytes, *, mask_key: bytes, fin: bool = True) -> bytes:
    """One client frame: final unless ``fin=False``, masked with the 4-byte ``mask_key``."""
    n = len(payload)
    if fin and n < 126:
        head = _SMALL_HEADS[(opcode << 7) | n]
    else:
        head = _head((0x80 if fin else 0) | opcode, n)
    return head + mask_key + apply_mask(payload, mask_key)


def close_payload(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    """The payload of a close frame (a code, then a UTF-8 reason of at most 123 bytes)."""
    data = code.to_bytes(2, "big") + reason.encode("utf-8")
    if len(data) > MAX_CONTROL_PAYLOAD_BYTES:
        raise ValueError(f"close reason too long: {len(data) - 2} bytes, at most 123")
    return data


def _valid_close_code(code: int) -> bool:
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a close frame's payload; 1005 when it has none (RFC 6455 7.1.5)."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise ProtocolError(f"close frame with invalid code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close frame reason is not UTF-8") from None
    return code, reason


class FrameEncoder:
    """Masked client frames, each with a fresh key (RFC 6455 5.3: from a strong source).

    Keys are 4-byte slices of an ``os.urandom`` block, so unpredictable like ``os.urandom(4)``
    per frame but without its syscall per frame (about 0.5 µs, a tenth of a message's cost).
    """

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: list[bytes] = []

    def _refill(self) -> None:
        block = os.urandom(MASK_KEY_BLOCK_BYTES)
        self._keys = [block[i:i + 4] for i in range(0, MASK_KEY_BLOCK_BYTES, 4)]

    def mask_key(self) -> bytes:
        if not self._keys:
            self._refill()
        return self._keys.pop()

    def frame(self, opcode: int, payload: bytes) -> bytes:
        """One final frame, masked with a fresh key (the hot path: everything inlined)."""
        try:
            key = self._keys.pop()
        except IndexError:  # once per 1,024 frames; a try costs nothing when nothing is raised
            self._refill()
            key = self._keys.pop()
        n = len(payload)
        head = _SMALL_HEADS[(opcode << 7) | n] if n < 126 else _head(0x80 | opcode, n)
        return b"".join((head, key, apply_mask(payload, key)))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
        return self.frame(OP_CLOSE, close_payload(code, reason))


class FrameParser:
    """Incremental parser of server frames; ``on_message(opcode, payload)`` per message.

    Data messages arrive with opcode OP_TEXT or OP_BINARY and their whole payload (fragments
    joined). Control frames (OP_PING, OP_PONG, OP_CLOSE) go to ``on_control(opcode, payload)``
    (``on_message`` when not given) as they come, also between the fragments of a message:
    answering a ping and a close is the caller's (``WsClientProtocol`` does both).

    ``feed`` raises ProtocolError for what RFC 6455 says must fail the connection: a masked
    server frame, reserved bits (no extension was negotiated), an unknown opcode, a bad control
    frame, a continuation out of place, or a frame or message above ``max_size`` bytes (close
    code 1009; found from the header, before the frame is buffered).
    Nothing after a close frame is parsed.
    """

    __slots__ = ("_buf", "_closed", "_frag_opcode", "_frag_parts", "_frag_size", "_max_size",
                 "_need", "_on_control", "_on_message")

    def __init__(self, on_message: OnMessage, *, on_control: OnMessage | None = None,
                 max_size: int = DEFAULT_MAX_SIZE_BYTES) -> None:
        self._on_message = on_message
        self._on_control = on_control if on_control is not None else on_message
        self._max_size = max_size
        self._buf = bytearray()  # the start of an incomplete frame
        self._need = 0  # how many bytes the buffer must hold before parsing is worth trying
        self._frag_opcode = 0  # the opcode of a fragmented message in progress, else 0
        self._frag_parts: list[bytes] = []
        self._frag_size = 0
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return
            data = bytes(self._buf)
            self._buf.clear()
        elif self._closed:
            return
        else:
            # The fast path: the read is exactly one small whole data frame (a closed loop's
            # usual read). Anything else, or a fragmented message in progress, goes the long way.
            n = len(data)
            if n > 1:
                b0 = data[0]
                if data[1] == n - 2 and n < 128 and (b0 == 0x82 or b0 == 0x81) \
                        and not self._frag_opcode:
                    self._on_message(b0 & 0x0F, data[2:])
                    return
        n = len(data)
        i = 0
        need = 0
        on_message = self._on_message
        max_size = self._max_size
        while i < n:
            if n - i < 2:
                need = 2
                break
            b0 = data[i]
            length = data[i + 1]
            if length < 126:  # unmasked (mask bit clear) and short: the common case
                start = i + 2
            elif length & 0x80:
                raise ProtocolError("masked frame from the server (RFC 6455 5.1)")
            elif length == 126:
                if n - i < 4:
                    need = 4
                    break
                length = (data[i + 2] << 8) | data[i + 3]
                start = i + 4
            else:
                if n - i < 10:
                    need = 10
                    break
                length = int.from_bytes(data[i + 2:i + 10], "big")
                start = i + 10
                if length >> 63:
                    raise ProtocolError("frame length with the most significant bit set")
            if length > max_size:
                raise ProtocolError(f"frame of {length} bytes, above the limit of {max_size}",
                                    close_code=CLOSE_TOO_BIG)
            end = start + length
            if end > n:
                need = end - i
                break
            if (b0 == 0x82 or b0 == 0x81) and not self._frag_opcode:
                on_message(b0 & 0x0F, data[start:end])
            else:
                self._frame(b0, data[start:end])
                if self._closed:
                    return
            i = end
        if i < n:
            self._buf += data[i:]
            self._need = need

    def _frame(self, b0: int, payload: bytes) -> None:
        """Every frame but a whole unfragmented data frame."""
        if b0 & 0x70:
            raise ProtocolError(f"reserved bits {(b0 >> 4) & 7:03b} set, no extension was "
                                "negotiated")
        fin = b0 & 0x80
        opcode = b0 & 0x0F
        if opcode in CONTROL_OPCODES:
            if not fin:
                raise ProtocolError("fragmented control frame")
            if len(payload) > MAX_CONTROL_PAYLOAD_BYTES:
                raise ProtocolError(f"control frame of {len(payload)} bytes, at most 125")
            if opcode == OP_CLOSE:
                parse_close(payload)  # validate it before the caller sees it
                self._closed = True
                self._buf.clear()
            self._on_control(opcode, payload)
            return
        if opcode == OP_CONTINUATION:
            if not self._frag_opcode:
                raise ProtocolError("continuation frame without a message to continue")
        elif opcode in DATA_OPCODES:
            if self._frag_opcode:
                raise ProtocolError("new data frame inside a fragmented message")
            if fin:  # only reached with a fragmented message in progress, handled above
                self._on_message(opcode, payload)
                return
            self._frag_opcode = opcode
        else:
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        self._frag_size += len(payload)
        if self._frag_size > self._max_size:
            raise ProtocolError(f"message of more than {self._max_size} bytes",
                                close_code=CLOSE_TOO_BIG)
        self._frag_parts.append(payload)
        if fin:
            message_opcode = self._frag_opcode
            message = b"".join(self._frag_parts)
            self._frag_opcode = 0
            self._frag_parts = []
            self._frag_size = 0
            self._on_message(message_opcode, message)
