"""The figure of an upload run: MB/s and peak server memory per server, one bar group per body
size."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from harness.analysis.families import series_view
from harness.analysis.findings.upload import memory_column, upload_rows
from harness.analysis.plots.style import TALL_FIGSIZE_IN, new_figure, server_order, styles_for
from harness.analysis.plots.websocket import bar_legend, bars
from harness.units import format_size

# A tall figure, wider by the legend beside it (inches).
UPLOAD_FIGSIZE_IN = (TALL_FIGSIZE_IN[0] + 2.0, TALL_FIGSIZE_IN[1])


def _one_per_size(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per server and body size, the level with the highest ``column`` (a valid one when there
    is one), with ``level`` set to the body size: the bars' groups."""
    ordered = rows[rows[column].notna()].sort_values(
        ["server", "upload_bytes", "valid", column], ascending=[True, True, False, False])
    picked = ordered.groupby(["server", "upload_bytes"], sort=False).head(1)
    return picked.assign(level=picked["upload_bytes"].astype("float64"))


def plot_upload(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """Top: each server's MB/s at its best level per body size; bottom: its peak memory (PSS,
    else RSS) at its highest level per size."""
    rows = upload_rows(series_view(summary))  # several app families: a series per (server, app)
    if rows.empty:
        return None
    column, label = memory_column(rows)
    fig = new_figure(UPLOAD_FIGSIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    styles = styles_for(series_view(summary))
    servers = server_order(rows)
    sizes = sorted(set(rows["upload_bytes"].astype("float64")))
    over, invalid = bars(top, _one_per_size(rows, "mb_s"), "mb_s", styles, servers, sizes,
                         label=True)
    bars(bottom, _one_per_size(rows, column), column, styles, servers, sizes, label=False)
    top.set_ylabel("MB/s (req/s × body)")
    bottom.set_ylabel(f"peak server memory, {label} MB")
    bottom.set_xticklabels([format_size(int(s)) for s in sizes])
    bottom.set_xlabel("upload body size")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
    fig.suptitle(title or "Uploads: MB/s and peak memory per body size")
    bar_legend(top, invalid, over)
    # every server of a run is a bar in each group: inside the axes the legend would hide them
    inside = top.get_legend()
    if inside is not None:
        handles, labels = inside.legend_handles, [t.get_text() for t in inside.get_texts()]
        inside.remove()
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    return fig
