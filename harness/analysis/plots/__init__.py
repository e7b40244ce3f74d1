"""Figures of one run: throughput, latency, the percentile spectrum, per-second series, CPU/RSS.

Figures are built with matplotlib's object API (``Figure``, no pyplot state) and rendered by the
Agg canvas, so nothing here depends on (or changes) the backend a notebook uses. Colours keep
the gateways apart at a glance: WSGI servers in blues and greens, ASGI servers in oranges and
reds, the same colour for a server in every figure. Overloaded levels (the server did not keep
up: a result) are hollow markers in the server's colour, legend entry OVERLOADED_LABEL; invalid
levels (the harness cannot vouch for them) grey hollow markers with a cross, legend entry
"invalid (not ranked)". Neither is joined to a valid line.
"""

from __future__ import annotations

from harness.analysis.plots.http import (
    plot_capacity,
    plot_latency,
    plot_resources,
    plot_spectrum,
    plot_throughput,
    plot_timeline,
)
from harness.analysis.plots.style import (
    INVALID_LABEL,
    OVERLOADED_LABEL,
    Style,
    save_figure,
    server_styles,
)
from harness.analysis.plots.upload import plot_upload
from harness.analysis.plots.websocket import (
    plot_ws_broadcast,
    plot_ws_idle,
    plot_ws_open_latency,
    plot_ws_throughput,
)

__all__ = ["INVALID_LABEL", "OVERLOADED_LABEL", "Style", "plot_capacity", "plot_latency",
           "plot_resources", "plot_spectrum", "plot_throughput", "plot_timeline", "plot_upload",
           "plot_ws_broadcast", "plot_ws_idle", "plot_ws_open_latency", "plot_ws_throughput",
           "save_figure", "server_styles"]
