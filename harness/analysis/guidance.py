"""Guidance: every topic's findings for one run, in the report's order.

Each topic is one module of :mod:`harness.analysis.findings` with a ``find(context)``
function, found by name in :data:`TOPICS`; a new finding is one module plus one entry.
Findings come first (capacity, throughput, families, tail, efficiency, memory), then the
caveats (how the run was measured). A WebSocket run has its own topic.

>>> items = compute_guidance(RunData.load("results/reference/io_bound"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from harness.analysis.families import multi_app, series_run, series_view
from harness.analysis.findings.common import Context, ranked_rows, service_floor
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData, summarize
from harness.analysis.runkind import HTTP, run_kind
from harness.analysis.wording import kind_label
from harness.registry import Registry

Finder = Callable[[Context], list[Finding]]

TOPICS: Registry[Finder] = Registry("finding topic", {
    "capacity": "harness.analysis.findings.capacity:find",
    "throughput": "harness.analysis.findings.throughput:find",
    "families": "harness.analysis.findings.families:find",
    "tail": "harness.analysis.findings.tail:find",
    "efficiency": "harness.analysis.findings.efficiency:find",
    "memory": "harness.analysis.findings.memory:find",
    "caveats": "harness.analysis.findings.caveats:find",
    "websocket": "harness.analysis.findings.websocket:find",
    "pools": "harness.analysis.findings.pools:find",
    "slow_clients": "harness.analysis.findings.slow_clients:find",
    "streams": "harness.analysis.findings.streams:find",
    "background": "harness.analysis.findings.background:find",
    "disconnect": "harness.analysis.findings.disconnect:find",
    "upload": "harness.analysis.findings.upload:find",
    "mixed": "harness.analysis.findings.mixed:find",
})
# Each kind of run's topics, in the report's order (harness.analysis.runkind decides the kind).
TOPICS_OF: dict[str, tuple[str, ...]] = {
    HTTP: ("capacity", "throughput", "families", "pools", "tail", "efficiency", "memory",
           "caveats"),
    "websocket": ("websocket",),
    # a slow-clients run compares each server with itself, K slow clients against none
    "slow_clients": ("slow_clients", "caveats"),
    "streams": ("streams", "caveats"),
    # each server counted against its own promises (tasks), or its own clients' closes
    "background": ("background", "caveats"),
    "disconnect": ("disconnect", "caveats"),
    # an upload run compares MB/s and memory per body size, not one request's throughput
    "upload": ("upload", "caveats"),
    # a mixed run ranks one kind's latency beside the others, not the requests together
    "mixed": ("mixed", "caveats"),
}


def context(run: RunData, summary: pd.DataFrame) -> Context:
    """The frames every topic reads (several app families: the series view, see Context)."""
    by_server_run, by_server_summary = run, summary
    if multi_app(summary):
        run, summary = series_run(run), series_view(summary)
    return Context(run=run, summary=summary, ranked=ranked_rows(summary),
                   kind=kind_label(run.meta), floor=service_floor(run, summary),
                   by_server_run=by_server_run, by_server_summary=by_server_summary)


def compute_guidance(run: RunData, summary: pd.DataFrame | None = None) -> list[Finding]:
    """Every topic's findings, in order (``summary``: ``summarize(run)`` when not given)."""
    summary = summarize(run) if summary is None else summary
    ctx = context(run, summary)
    kind = run_kind(run.meta)
    topics = TOPICS_OF[kind]
    items: list[Finding] = []
    for name in topics:
        items += TOPICS.get(name)(ctx)
    if kind != "websocket" and ctx.ranked.empty:
        items.insert(0, Finding(
            topic="none_valid", caveat=True, run_id=run.run_id,
            text="No valid trial in this run: nothing is ranked (see the caveats below)."))
    return items


def guidance_table(items: Sequence[Finding]) -> pd.DataFrame:
    """The findings as a frame, one row each, handy in a notebook."""
    return pd.DataFrame([{**item.to_json(), "trial_ids": list(item.trial_ids)}
                         for item in items])
