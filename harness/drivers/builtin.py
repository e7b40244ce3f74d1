"""The built-in generator (harness.loadgen) as a driver."""

from __future__ import annotations

from typing import Any

from harness import __version__
from harness.loadgen import LoadResult, LoadSpec, run_load


class BuiltinDriver:
    """asyncio Protocol-level HTTP/1.1 (and WebSocket) client with httptools and uvloop."""

    name = "builtin"

    def measure(self, spec: LoadSpec) -> LoadResult:
        return run_load(spec)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": __version__}

    def supports(self, spec: LoadSpec) -> str | None:
        return None  # every load model is its own
