"""How the findings are worded: number formats, level and server labels, the shared phrases.

One place for the words, so the report, the console and the findings say a figure the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.cpus import parse_cpus
from harness.errors import UsageError

# Every figure: 6,737 / 0.012 / 1.5 / 95 (a percentage, a p-value, a ratio, a count). Two
# sentences or reasons that differ only in these say the same (harness.analysis.agreement).
FIGURE_RE = re.compile(r"\d[\d,]*(?:\.\d+)?")


KIND_LABELS = {
    "io": "I/O-bound",
    "cpu": "CPU-bound",
    "hello": "Plaintext hello",
    "json": "JSON",
    "websocket": "WebSocket echo",
    "ws": "WebSocket echo",
}


def fmt_rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.1f}×"


def fmt_pct(value: float) -> str:
    return f"{value:.0f} %"


def fmt_mb(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def level_phrase(load_model: str, level: float) -> str:
    if load_model == "closed":
        return f"{level:g} concurrent clients"
    if load_model == "broadcast":
        return f"{level:g} subscribers (broadcast)"
    if load_model == "idle":
        return f"{level:g} idle connections"
    return f"{level:g} req/s offered (open loop)"


def kind_label(meta: Mapping[str, Any]) -> str:
    scenario = meta.get("scenario") or {}
    kind = str(scenario.get("kind") or "")
    return KIND_LABELS.get(kind, str(scenario.get("name") or kind or "Scenario"))


def cpu_phrase(cpus_text: str) -> str:
    try:
        count = len(parse_cpus(cpus_text)) if cpus_text else 0
    except UsageError:
        return f"CPUs {cpus_text}"
    if count == 0:
        return "same CPU set"
    return "same single CPU" if count == 1 else f"same {count} CPUs"


def row_label(row: pd.Series) -> str:
    return f"{row['server']} ({str(row['gateway']).upper()})"
