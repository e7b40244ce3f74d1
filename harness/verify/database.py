"""The database routes against the rows of the database they read."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser

from apps import dbcontract
from apps.raw import common
from harness.checks import DEFAULT_TIMEOUT_S, Check, VerifyReport
from harness.errors import TargetError
from harness.services import database
from harness.verify.probe import (
    IO_CHECK_MS,
    LiveTarget,
    expect,
    fetch_or_check,
    head_problems,
    shorten,
    waited,
)

# /queries?n=N and the rows expected: in range, and clamped at both ends, and not a number.
DB_QUERIES_CHECKS = ((20, 20), (0, 1), (501, dbcontract.QUERIES_MAX), ("abc", 1))


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


def _json_check(target: LiveTarget, name: str, path: str,
                problems_of: Callable[[object], list[str]]) -> Check:
    """GET ``path``: 200, JSON Content-Type and framing, and a body ``problems_of`` accepts."""
    answer = fetch_or_check(target, name, path)
    if isinstance(answer, Check):
        return answer
    problems = head_problems(answer, status=200, content_type=common.APPLICATION_JSON)
    try:
        problems.extend(problems_of(json.loads(answer.body)))
    except ValueError:
        problems.append(f"expected JSON, got {shorten(answer.body)}")
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


def _check_fortunes(target: LiveTarget, fortunes: list[tuple[int, str]]) -> Check:
    name, path = "fortunes", dbcontract.FORTUNES_PATH
    answer = fetch_or_check(target, name, path)
    if isinstance(answer, Check):
        return answer
    problems = head_problems(answer, status=200, content_type=dbcontract.TEXT_HTML)
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
    target = LiveTarget(base_url, timeout_s)
    ms = IO_CHECK_MS
    bad = dbcontract.parse_db("GET", dbcontract.DB_SLEEP_PATH, "ms=abc")
    assert isinstance(bad, common.Response)
    checks = [
        _json_check(target, "db", dbcontract.DB_PATH, lambda v: _world_problems(v, rows)),
        *(_json_check(target, f"queries[n={n}]", f"{dbcontract.QUERIES_PATH}?n={n}",
                      _rows_check(want, rows))
          for n, want in DB_QUERIES_CHECKS),
        _check_fortunes(target, fortunes),
        expect(target, "db_sleep", f"{dbcontract.DB_SLEEP_PATH}?ms={ms}", status=200,
                content_type=common.APPLICATION_JSON, body=dbcontract.sleep_response(ms).body,
                extra=waited(ms)),
        expect(target, "db_sleep_bad_ms", f"{dbcontract.DB_SLEEP_PATH}?ms=abc", status=400,
                content_type=common.TEXT_PLAIN, body=bad.body),
    ]
    return VerifyReport(checks=tuple(checks))
