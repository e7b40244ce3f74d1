"""The app contract (apps/README.md), checked against a live target before any measurement.

A server that answers fast with the wrong bytes would win every benchmark, so each target must
first pass these checks: exact status, Content-Type, body framing and body of every endpoint,
the ``/cpu`` result computed here, ``/io`` waits at least the asked time, and the WebSocket echo
and broadcast where the server supports it. A missing Date header is a warning, not a failure
(daphne sends none).

The checks use blocking stdlib clients (http.client, the websockets sync client), independent of
the apps' own clients, each bounded by a timeout so a stuck target fails instead of hanging::

    report = verify_target("http://127.0.0.1:8000", websocket=True)
    if not report.ok:
        print("; ".join(f"{c.name}: {c.detail}" for c in report.failures))
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urlsplit

from apps import dbcontract
from apps.raw import common
from harness.catalogue import Target
from harness.checks import DEFAULT_TIMEOUT_S, Check, VerifyReport
from harness.errors import TargetError, UsageError
from harness.httpget import NO_ANSWER, Answer, fetch
from harness.ownapp import verify_path
from harness.services import database

IO_CHECK_MS = 100
# Timers may fire a hair early; a target that does not wait at all is off by ~100 ms.
IO_EARLY_TOLERANCE_MS = 1.0
# The machine is shared and the first upstream call opens a connection: generous, yet a server
# that queues a request behind another's full wait is still caught.
IO_LATE_TOLERANCE_MS = 1000.0
CPU_CHECK_NS = (0, 1000, 5000)
NOT_FOUND_PATH = "/no-such-path"
WS_TEXT = "echo ✓ text"
WS_BYTES = bytes(range(256))
# /ws/broadcast reaches only the subscribers on the publisher's worker process, so several
# subscribers listen, and a new publisher tries again, with more subscribers, when none of them
# shared its worker (how a pre-fork server spreads connections over its workers is the kernel's
# accept race: a run of them can land on one worker).
WS_BROADCAST_SUBSCRIBERS = 8
WS_BROADCAST_MORE_SUBSCRIBERS = 4  # added before each new attempt
WS_BROADCAST_ATTEMPTS = 8
WS_BROADCAST_WAIT_S = 2.0  # for the first subscriber to receive: one worker's fan-out
WS_BROADCAST_QUIET_S = 0.3  # the publisher hears nothing, the other subscribers are served
_MAX_BODY_SHOWN = 80
# /queries?n=N and the rows expected: in range, and clamped at both ends, and not a number.
DB_QUERIES_CHECKS = ((20, 20), (0, 1), (501, dbcontract.QUERIES_MAX), ("abc", 1))


def _shorten(body: bytes) -> str:
    text = repr(body[:_MAX_BODY_SHOWN])
    return text + ("..." if len(body) > _MAX_BODY_SHOWN else "")


class _Target:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"verify: expected a base URL like 'http://127.0.0.1:8000', "
                             f"got {base_url!r}")
        self.origin = f"http://{parts.netloc}"
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        # Set by the first request that gets no answer: the rest fail at once instead of each
        # waiting out its own timeout on a stuck target.
        self.silent_since: str | None = None

    def get(self, path: str) -> Answer:
        return fetch(self.origin + self.prefix + path, timeout_s=self.timeout_s,
                     headers=[("Accept", "*/*")])

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{self.prefix}{path}"


def _framing_problems(answer: Answer) -> list[str]:
    problems = []
    length = answer.headers.get("Content-Length")
    chunked = "chunked" in answer.headers.get("Transfer-Encoding", "").lower()
    if length is not None:
        if length.strip() != str(len(answer.body)):
            problems.append(f"Content-Length {length!r} but {len(answer.body)} body bytes")
    elif not chunked:
        problems.append("neither Content-Length nor Transfer-Encoding: chunked")
    return problems


def _fetch(target: _Target, name: str, path: str) -> Answer | Check:
    """The answer to GET ``path``, or the failed check saying why there is none. After one
    request gets no answer the target is taken as silent: later checks fail at once instead of
    each waiting out the timeout."""
    if target.silent_since is not None:
        return Check(name=name, ok=False,
                     detail=f"GET {path}: not tried, GET {target.silent_since} got no answer")
    try:
        return target.get(path)
    except NO_ANSWER as exc:
        target.silent_since = path
        reason = "timed out" if isinstance(exc, socket.timeout) else f"{type(exc).__name__}: {exc}"
        return Check(name=name, ok=False,
                     detail=f"GET {path}: no answer within {target.timeout_s:g} s ({reason})")


def _check_date(target: _Target) -> Check:
    """A warning, not a failure: daphne sends no Date and would otherwise never be measured."""
    name, path = "date_header", "/hello"
    answer = _fetch(target, name, path)
    if isinstance(answer, Check):
        return answer
    date = answer.headers.get("Date")
    if date is None:
        return Check(name=name, ok=True, warning=True,
                     detail=f"GET {path}: no Date header (RFC 9110 asks origin servers for one)")
    return Check(name=name, ok=True, detail=f"GET {path}: Date {date!r}")


def _expect(target: _Target, name: str, path: str, *, status: int, content_type: str,
            body: bytes, extra: Callable[[Answer], list[str]] | None = None) -> Check:
    """GET ``path`` and compare status, Content-Type, framing, Date and the exact body."""
    answer = _fetch(target, name, path)
    if isinstance(answer, Check):
        return answer
    problems = []
    if answer.status != status:
        problems.append(f"expected status {status}, got {answer.status}")
    got_type = answer.headers.get("Content-Type")
    if got_type != content_type:
        problems.append(f"expected Content-Type {content_type!r}, got {got_type!r}")
    problems.extend(_framing_problems(answer))
    if answer.body != body:
        problems.append(f"expected body {_shorten(body)}, got {_shorten(answer.body)}")
    if extra is not None:
        problems.extend(extra(answer))
    if problems:
        return Check(name=name, ok=False, detail=f"GET {path}: " + "; ".join(problems))
    return Check(name=name, ok=True,
                 detail=f"GET {path}: {answer.status}, {len(answer.body)} bytes in "
                        f"{answer.elapsed_ms:.0f} ms")


def _waited(ms: int) -> Callable[[Answer], list[str]]:
    def check(answer: Answer) -> list[str]:
        if answer.elapsed_ms < ms - IO_EARLY_TOLERANCE_MS:
            return [f"expected to wait at least {ms} ms, answered in {answer.elapsed_ms:.1f} ms"]
        if answer.elapsed_ms > ms + IO_LATE_TOLERANCE_MS:
            return [f"expected to wait about {ms} ms, took {answer.elapsed_ms:.0f} ms"]
        return []
    return check


def _check_ws_echo(target: _Target) -> Check:
    name = "ws_echo"
    url = target.ws_url("/ws/echo")
    if target.silent_since is not None:
        return Check(name=name, ok=False,
                     detail=f"WebSocket {url}: not tried, GET {target.silent_since} got no answer")
    # Imported here: only WebSocket targets need it, and it is the heaviest import of this module.
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect
    try:
        with connect(url, open_timeout=target.timeout_s, close_timeout=target.timeout_s,
                     compression=None) as ws:
            ws.send(WS_TEXT)
            got_text = ws.recv(timeout=target.timeout_s)
            ws.send(WS_BYTES)
            got_bytes = ws.recv(timeout=target.timeout_s)
    except (OSError, TimeoutError, WebSocketException) as exc:
        return Check(name=name, ok=False, detail=f"WebSocket {url}: {type(exc).__name__}: {exc}")
    problems = []
    if got_text != WS_TEXT:
        problems.append(f"sent text {WS_TEXT!r}, got back {got_text!r}"[:200])
    if got_bytes != WS_BYTES:
        shown = _shorten(got_bytes) if isinstance(got_bytes, bytes) else repr(got_bytes)[:80]
        problems.append(f"sent {len(WS_BYTES)} bytes, got back {shown}")
    if problems:
        return Check(name=name, ok=False, detail=f"WebSocket {url}: " + "; ".join(problems))
    return Check(name=name, ok=True, detail=f"WebSocket {url}: text and bytes echoed")


async def _broadcast_once(base: str, timeout_s: float) -> tuple[list[str], int]:
    """Problems seen broadcasting one message, and how many subscribers received it; raises
    when a connection fails."""
    from websockets.asyncio.client import ClientConnection, connect

    async def dial(role: str) -> ClientConnection:
        return await connect(f"{base}?role={role}", open_timeout=timeout_s,
                             close_timeout=timeout_s, compression=None, ping_interval=None)

    subscribers: list[ClientConnection] = []
    publishers: list[ClientConnection] = []
    try:
        for _ in range(WS_BROADCAST_SUBSCRIBERS):
            subscribers.append(await dial("subscriber"))
        for attempt in range(WS_BROADCAST_ATTEMPTS):
            if attempt:
                for _ in range(WS_BROADCAST_MORE_SUBSCRIBERS):
                    subscribers.append(await dial("subscriber"))
            publisher = await dial("publisher")
            publishers.append(publisher)
            payload = bytes((attempt,)) + WS_BYTES  # opaque, and which attempt it came from
            await publisher.send(payload)
            waits = [asyncio.ensure_future(s.recv()) for s in subscribers]
            done, pending = await asyncio.wait(waits, timeout=min(timeout_s, WS_BROADCAST_WAIT_S),
                                               return_when=asyncio.FIRST_COMPLETED)
            if done and pending:
                more, pending = await asyncio.wait(pending, timeout=WS_BROADCAST_QUIET_S)
                done |= more
            for wait in pending:
                wait.cancel()
            if not done:
                continue  # no subscriber on this publisher's worker: a new publisher
            problems = [f"a subscriber got {_shorten(got) if isinstance(got, bytes) else got!r}"
                        f", expected the {len(payload)} bytes published"
                        for got in (wait.result() for wait in done) if got != payload][:1]
            try:
                echoed = await asyncio.wait_for(publisher.recv(), WS_BROADCAST_QUIET_S)
            except TimeoutError:
                pass
            else:
                problems.append(f"the publisher got a message back ({len(echoed)} bytes)")
            return problems, len(done)
        return [f"none of {len(subscribers)} subscribers received a message from any "
                f"of {WS_BROADCAST_ATTEMPTS} publishers within {WS_BROADCAST_WAIT_S:g} s"], 0
    finally:
        for connection in publishers + subscribers:
            await connection.close()


def _check_ws_broadcast(target: _Target) -> Check:
    name = "ws_broadcast"
    base = target.ws_url("/ws/broadcast")
    if target.silent_since is not None:
        return Check(name=name, ok=False,
                     detail=f"WebSocket {base}: not tried, GET {target.silent_since} got no "
                            "answer")
    from websockets.exceptions import WebSocketException
    try:
        problems, received = asyncio.run(_broadcast_once(base, target.timeout_s))
    except (OSError, TimeoutError, WebSocketException) as exc:
        return Check(name=name, ok=False, detail=f"WebSocket {base}: {type(exc).__name__}: {exc}")
    if problems:
        return Check(name=name, ok=False, detail=f"WebSocket {base}: " + "; ".join(problems))
    return Check(name=name, ok=True,
                 detail=f"WebSocket {base}: a publisher's message reached {received} "
                        f"subscriber(s) (those on its worker), not the publisher")


def verify_target(base_url: str, *, websocket: bool, io: bool = True,
                  broadcast: bool | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> VerifyReport:
    """Check the live target at ``base_url`` against the app contract.

    ``io=False`` skips ``/io`` in upstream mode (no delay service is running); the sleep mode is
    always checked. ``websocket=False`` skips the echo and the broadcast (a WSGI server);
    ``broadcast`` (default: as ``websocket``) says whether ``/ws/broadcast`` is checked. Every
    request is bounded by ``timeout_s`` (which must exceed the ``/io`` wait of 100 ms).
    """
    target = _Target(base_url, timeout_s)
    text, json_type = common.TEXT_PLAIN, common.APPLICATION_JSON
    checks = [
        _expect(target, "hello", "/hello", status=200, content_type=text, body=common.HELLO_BODY),
        _expect(target, "json", "/json", status=200, content_type=json_type,
                body=common.JSON_BODY),
        _expect(target, "not_found", NOT_FOUND_PATH, status=404, content_type=text,
                body=common.NOT_FOUND_BODY),
        _check_date(target),
    ]
    for n in CPU_CHECK_NS:
        checks.append(_expect(target, f"cpu[n={n}]", f"/cpu?n={n}", status=200,
                              content_type=json_type, body=common.cpu_body(n, common.cpu_work(n))))
    for name, path in (("cpu_bad_n", "/cpu?n=-1"), ("io_bad_ms", "/io?ms=abc"),
                       ("io_bad_mode", "/io?ms=1&mode=nap")):
        query = path.partition("?")[2]
        rejected = common.parse_cpu(query) if path.startswith("/cpu") else common.parse_io(query)
        assert isinstance(rejected, common.Response)
        checks.append(_expect(target, name, path, status=400, content_type=text,
                              body=rejected.body))
    ms = IO_CHECK_MS
    checks.append(_expect(target, "io_sleep", f"/io?ms={ms}&mode=sleep", status=200,
                          content_type=json_type, body=common.io_body(ms, "sleep"),
                          extra=_waited(ms)))
    if io:
        checks.append(_expect(target, "io_upstream", f"/io?ms={ms}", status=200,
                              content_type=json_type, body=common.io_body(ms, "upstream"),
                              extra=_waited(ms)))
    if websocket:
        checks.append(_check_ws_echo(target))
        if broadcast is None or broadcast:
            checks.append(_check_ws_broadcast(target))
    return VerifyReport(checks=tuple(checks))


class _FortuneTable(HTMLParser):
    """The (id, message) cells of a fortunes page, unescaped; ``tags``: every start tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _world_problems(value: object, rows: dict[int, int]) -> list[str]:
    """What is wrong with one ``{"id":N,"randomNumber":M}`` against the database's rows."""
    if not isinstance(value, dict) or set(value) != {"id", "randomNumber"}:
        return [f"expected an object with id and randomNumber, got {value!r:.80}"]
    ident, number = value["id"], value["randomNumber"]
    if not isinstance(ident, int) or ident not in rows:
        return [f"id {ident!r} is not a row of table world"]
    if number != rows[ident]:
        return [f"row {ident}: randomNumber {number!r}, the database has {rows[ident]}"]
    return []


def _json_check(target: _Target, name: str, path: str, problems_of: Callable[[object], list[str]],
                ) -> Check:
    """GET ``path``: 200, JSON Content-Type and framing, and a body ``problems_of`` accepts."""
    answer = _fetch(target, name, path)
    if isinstance(answer, Check):
        return answer
    problems = [] if answer.status == 200 else [f"expected status 200, got {answer.status}"]
    got_type = answer.headers.get("Content-Type")
    if got_type != common.APPLICATION_JSON:
        problems.append(f"expected Content-Type {common.APPLICATION_JSON!r}, got {got_type!r}")
    problems.extend(_framing_problems(answer))
    try:
        problems.extend(problems_of(json.loads(answer.body)))
    except ValueError:
        problems.append(f"expected JSON, got {_shorten(answer.body)}")
    if problems:
        return Check(name=name, ok=False, detail=f"GET {path}: " + "; ".join(problems))
    return Check(name=name, ok=True, detail=f"GET {path}: {len(answer.body)} bytes in "
                                            f"{answer.elapsed_ms:.0f} ms")


def _rows_check(expect_n: int, rows: dict[int, int]) -> Callable[[object], list[str]]:
    def problems(value: object) -> list[str]:
        if not isinstance(value, list) or len(value) != expect_n:
            got = len(value) if isinstance(value, list) else type(value).__name__
            return [f"expected a list of {expect_n} rows, got {got}"]
        return [p for item in value for p in _world_problems(item, rows)][:3]
    return problems


def _check_fortunes(target: _Target, fortunes: list[tuple[int, str]]) -> Check:
    name, path = "fortunes", dbcontract.FORTUNES_PATH
    answer = _fetch(target, name, path)
    if isinstance(answer, Check):
        return answer
    problems = [] if answer.status == 200 else [f"expected status 200, got {answer.status}"]
    got_type = answer.headers.get("Content-Type")
    if got_type != dbcontract.TEXT_HTML:
        problems.append(f"expected Content-Type {dbcontract.TEXT_HTML!r}, got {got_type!r}")
    problems.extend(_framing_problems(answer))
    table = _FortuneTable()
    table.feed(answer.body.decode("utf-8", "replace"))
    if "script" in table.tags:
        problems.append("a message is not HTML-escaped (a <script> element in the page)")
    got = [tuple(row) for row in table.rows if row]
    expected = [(str(i), m) for i, m in dbcontract.sorted_fortunes(fortunes)]
    if got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                     min(len(got), len(expected)))
        problems.append(f"expected {len(expected)} rows (id, message) sorted by message, got "
                        f"{len(got)}: first difference at row {first + 1}")
    if problems:
        return Check(name=name, ok=False, detail=f"GET {path}: " + "; ".join(problems))
    return Check(name=name, ok=True, detail=f"GET {path}: {len(expected)} rows, "
                                            f"{len(answer.body)} bytes")


def verify_database(base_url: str, db_url: str, *,
                    timeout_s: float = DEFAULT_TIMEOUT_S) -> VerifyReport:
    """The database routes (apps/README.md) against the rows of the database at ``db_url``:
    every row an answer carries must be the database's own."""
    try:
        rows, fortunes = database.read_rows(db_url)
    except TargetError as exc:
        return VerifyReport(checks=(Check(name="db_rows", ok=False, detail=str(exc)),))
    target = _Target(base_url, timeout_s)
    ms = IO_CHECK_MS
    bad = dbcontract.parse_db("GET", dbcontract.DB_SLEEP_PATH, "ms=abc")
    assert isinstance(bad, common.Response)
    checks = [
        _json_check(target, "db", dbcontract.DB_PATH, lambda v: _world_problems(v, rows)),
        *(_json_check(target, f"queries[n={n}]", f"{dbcontract.QUERIES_PATH}?n={n}",
                      _rows_check(want, rows))
          for n, want in DB_QUERIES_CHECKS),
        _check_fortunes(target, fortunes),
        _expect(target, "db_sleep", f"{dbcontract.DB_SLEEP_PATH}?ms={ms}", status=200,
                content_type=common.APPLICATION_JSON, body=dbcontract.sleep_response(ms).body,
                extra=_waited(ms)),
        _expect(target, "db_sleep_bad_ms", f"{dbcontract.DB_SLEEP_PATH}?ms=abc", status=400,
                content_type=common.TEXT_PLAIN, body=bad.body),
    ]
    return VerifyReport(checks=tuple(checks))


def verify_family_target(base_url: str, target: Target, *, io: bool = True,
                         db_url: str | None = None) -> VerifyReport:
    """Verify a live target as its app family asks: the whole app contract (WebSocket where
    both the server and the family have it), or, for a user's own app, that its path answers
    2xx (the one thing the harness can know about it)."""
    family = target.family
    if family.check_path is not None:
        return verify_path(base_url, family.check_path).report
    report = verify_target(base_url, websocket=target.server.websocket and family.websocket,
                           io=io)
    if db_url is not None and family.database is not None:
        report = VerifyReport(checks=report.checks + verify_database(base_url, db_url).checks)
    return report
