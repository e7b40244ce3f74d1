"""What kind of run a folder holds, decided once from its run.json: which finding topics it has
(harness.analysis.guidance) and which "What to run" rows answer it (harness.analysis.answers).
A new kind of run is one entry here, in the order a run is tested against them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from harness.analysis.findings.background import is_background
from harness.analysis.findings.disconnect import is_disconnect
from harness.analysis.findings.mixed import is_mixed
from harness.analysis.findings.slow_clients import is_slow_clients
from harness.analysis.findings.streams import is_streams
from harness.analysis.findings.upload import is_upload
from harness.analysis.websocket import is_websocket

# Each kind and its test, the first that holds decides; a run none of them claims is "http".
RUN_KINDS: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...] = (
    ("websocket", is_websocket),
    ("slow_clients", is_slow_clients),
    ("streams", is_streams),
    ("background", is_background),
    ("disconnect", is_disconnect),
    ("upload", is_upload),
    ("mixed", is_mixed),
)
HTTP = "http"


def run_kind(meta: Mapping[str, Any]) -> str:
    """The kind of the run whose run.json is ``meta``: a name of RUN_KINDS, or "http"."""
    return next((name for name, test in RUN_KINDS if test(meta)), HTTP)
