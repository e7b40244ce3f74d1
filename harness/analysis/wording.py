"""How the findings are worded: number formats, level and server labels, the shared phrases.

One place for the words, so the report, the console and the findings say a figure the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import pandas as pd

from harness.analysis.findings.record import NOT_RANKED, RANKED
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
    "db": "Database-bound",
    "background": "Background work",
    "disconnect": "Clients leaving a stream",
    "upload": "Upload",
}

# A database run's work, from its request path (the kind alone says only "database").
DB_WORK_LABELS = {
    "/db": "Database, one query a request",
    "/queries": "Database, {n} queries a request",
    "/fortunes": "Database, fortunes page",
    "/db/sleep": "Database wait of {ms} ms",
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
    if load_model == "slow":
        return f"{level:g} slow clients held"
    if load_model == "stream":
        return f"{level:g} streams at once"
    if load_model == "background":
        return f"{level:g} clients, work after each answer"
    if load_model == "sigterm":
        return f"{level:g} clients, SIGTERM halfway"
    if load_model == "disconnect":
        return f"{level:g} clients leaving a stream"
    return f"{level:g} req/s offered (open loop)"


def kind_label(meta: Mapping[str, Any]) -> str:
    scenario = meta.get("scenario") or {}
    kind = str(scenario.get("kind") or "")
    if kind == "db":
        path, _, query = str(scenario.get("endpoint") or "").partition("?")
        template = DB_WORK_LABELS.get(path)
        if template is not None:
            params = dict(parse_qsl(query))
            try:
                return template.format(**params)
            except KeyError:
                pass
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


def p_text(p_value: float | None) -> str:
    """``p < 0.001`` / ``p = 0.012``; empty without a test."""
    if p_value is None:
        return ""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


# A first-layer sentence names at most this many servers of a group; the rest are counted.
HEADLINE_NAMES_MAX = 2


def names_text(names: Sequence[str], limit: int | None = None) -> str:
    """``a``; ``a and b``; ``a, b and c``; with ``limit`` 2: ``a, b and 3 more``."""
    names = list(names)
    if limit is not None and len(names) > limit + 1:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def side_text(names: Sequence[str], gateway: str, limit: int | None = HEADLINE_NAMES_MAX
              ) -> str:
    text = names_text(names, limit)
    return f"{text} ({gateway.upper()})" if gateway else text


def comparison_headline(*, where: str, what: str, verdict: str,
                        sides: Sequence[Sequence[str]], gateways: Sequence[str],
                        ratio: float, p_value: float | None, why: str = "",
                        verb: str = "served", compared: Sequence[str] = ()) -> str:
    """The first layer's sentence of a comparison of two sides, from its record's fields;
    ``compared``: the two servers the test compared, named alone when no winner is."""
    if verdict != RANKED and len(compared) == 2:
        sides = [[compared[0]], [compared[1]]]
    first, second = (side_text(s, g) for s, g in zip(sides, gateways, strict=True))
    head = f"{where}, {what}: " if what else f"{where}: "
    if verdict == RANKED:
        sure = f" ({p_text(p_value)})" if p_value is not None else " (measured once)"
        return f"{head}{first} {verb} {fmt_ratio(ratio)} {second}{sure}."
    if verdict == NOT_RANKED:
        return f"{head}{first} and {second} are not ranked: {why}."
    detail = ", ".join(x for x in (fmt_ratio(ratio), p_text(p_value), why) if x)
    return f"{head}no significant difference between {first} and {second} ({detail})."
