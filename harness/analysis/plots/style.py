"""How every figure looks: the colour of each server (WSGI blues and greens, ASGI oranges and
reds, the same in every figure), markers for overloaded and invalid levels, the axes and the
legend, and saving a figure as PNG and SVG."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from harness.analysis.families import SERIES_SEPARATOR

FIGSIZE_IN = (8.0, 4.4)


TALL_FIGSIZE_IN = (8.0, 6.4)


PNG_DPI = 110


INVALID_COLOUR = "#9e9e9e"


INVALID_LABEL = "invalid (not ranked)"


OVERLOADED_LABEL = "overloaded: did not keep up (a result, not ranked)"


SLO_COLOUR = "#212529"


SPECTRUM_TICKS_PCT = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)


# Fixed colours for the servers of the catalogue, so a server looks the same in every report.
WSGI_COLOURS: dict[str, str] = {
    "gunicorn-sync": "#1f4e99",
    "gunicorn-gthread": "#3d8bd9",
    "gunicorn-gevent": "#0f9bb0",
    "uwsgi": "#2e8b57",
    "granian-wsgi": "#7cb342",
}


ASGI_COLOURS: dict[str, str] = {
    "uvicorn": "#e8590c",
    "uvicorn-h11": "#f59f00",
    "gunicorn-uvicorn": "#c92a2a",
    "gunicorn-asgi": "#e64980",
    "hypercorn": "#a61e4d",
    "daphne": "#8d5524",
    "granian-asgi": "#ff7b7b",
}


# For servers the table above does not know: more of the same families.
WSGI_SPARE = ("#4dabf7", "#087f5b", "#74c0fc", "#94d82d", "#1864ab", "#38d9a9")


ASGI_SPARE = ("#d9480f", "#ffa94d", "#e03131", "#f76707", "#862e9c", "#ffc078")


OTHER_SPARE = ("#6741d9", "#495057", "#9775fa", "#343a40")


GATEWAY_MARKERS = {"wsgi": "o", "asgi": "s"}


# Series of a run with several app families (harness.analysis.families): a marker per family,
# and the server's colour shaded per family (darker below 0, lighter above) so lines without
# markers (the spectrum) stay apart too; distinct among the families of each gateway.
FAMILY_MARKERS = {"raw": "o", "django": "s", "django-async": "D", "flask": "^", "quart": "v",
                  "fastapi": "P", "starlette": "X", "pyramid": "*"}


FAMILY_SHADES = {"raw": 0.0, "django": -0.4, "django-async": 0.4, "flask": -0.2, "quart": 0.2,
                 "fastapi": -0.6, "starlette": 0.6, "pyramid": 0.5}


def shade(colour: str, amount: float) -> str:
    """``colour`` mixed with white (``amount`` > 0) or black (< 0) by ``abs(amount)``."""
    target = 1.0 if amount > 0 else 0.0
    red, green, blue = (c + (target - c) * abs(amount) for c in to_rgb(colour))
    return str(to_hex((red, green, blue)))


@dataclass(frozen=True, kw_only=True)
class Style:
    """How one server is drawn."""

    colour: str
    marker: str
    linestyle: str
    label: str


def server_styles(servers: Iterable[tuple[str, str]]) -> dict[str, Style]:
    """A style per server name from (server, gateway) pairs; stable for the known servers."""
    styles: dict[str, Style] = {}
    spare_used = {"wsgi": 0, "asgi": 0, "other": 0}
    for server, gateway in sorted(set(servers)):
        if server in styles:
            continue
        family = gateway.lower() if gateway.lower() in ("wsgi", "asgi") else "other"
        fixed = {"wsgi": WSGI_COLOURS, "asgi": ASGI_COLOURS}.get(family, {})
        # a series of a run with several app families, "uvicorn · django": the server's
        # colour shaded for the family, the family's marker
        base, _, app = server.partition(SERIES_SEPARATOR)
        colour = fixed.get(base)
        if colour is None:
            spare = {"wsgi": WSGI_SPARE, "asgi": ASGI_SPARE}.get(family, OTHER_SPARE)
            colour = spare[spare_used[family] % len(spare)]
            spare_used[family] += 1
        marker = (FAMILY_MARKERS.get(app, "h") if app
                  else GATEWAY_MARKERS.get(family, "D"))
        if app:
            colour = shade(colour, FAMILY_SHADES.get(app, 0.3))
        styles[server] = Style(colour=colour, marker=marker,
                               linestyle="-" if family == "wsgi" else "--",
                               label=f"{server} ({gateway.upper()})")
    return styles


def styles_for(summary: pd.DataFrame) -> dict[str, Style]:
    return server_styles(zip(summary["server"].astype(str), summary["gateway"].astype(str),
                             strict=True))


def server_order(summary: pd.DataFrame) -> list[str]:
    # WSGI first, then ASGI, so legends read in the same order as the colour families.
    pairs = sorted({(str(g).lower() != "wsgi", str(g).lower() != "asgi", str(s))
                    for s, g in zip(summary["server"], summary["gateway"], strict=True)})
    return [p[2] for p in pairs]


def invalid_handle() -> tuple[Line2D, Line2D]:
    # Drawn like the points themselves: a hollow grey marker with a cross on top.
    ring = Line2D([], [], linestyle="none", marker="o", markersize=9, markerfacecolor="none",
                  markeredgecolor=INVALID_COLOUR, markeredgewidth=1.4)
    cross = Line2D([], [], linestyle="none", marker="x", markersize=7, color=INVALID_COLOUR,
                   markeredgewidth=1.6)
    return ring, cross


def overloaded_handle(marker: str = "o", colour: str = "#495057") -> Line2D:
    return Line2D([], [], linestyle="none", marker=marker, markersize=8, markerfacecolor="none",
                  markeredgecolor=colour, markeredgewidth=1.6)


def is_overloaded(rows: pd.DataFrame) -> pd.Series:
    if "outcome" not in rows:
        return pd.Series(False, index=rows.index)
    return (rows["outcome"].astype("string") == "overloaded").fillna(False).astype(bool)


def draw_points(ax: Axes, x: pd.Series, y: pd.Series, style: Style, *,
                 overloaded: bool) -> None:
    """Points that are not ranked: hollow in the server's colour (overloaded), or grey
    crossed circles (invalid)."""
    if overloaded:
        ax.plot(x, y, linestyle="none", marker=style.marker, markersize=8,
                markerfacecolor="none", markeredgecolor=style.colour, markeredgewidth=1.6)
        return
    ax.plot(x, y, linestyle="none", marker=style.marker, markersize=9,
            markerfacecolor="none", markeredgecolor=INVALID_COLOUR, markeredgewidth=1.4)
    ax.plot(x, y, linestyle="none", marker="x", markersize=7, color=INVALID_COLOUR,
            markeredgewidth=1.6)


def draw_series(ax: Axes, rows: pd.DataFrame, y: str, style: Style, *, label: bool,
                 x: str = "level") -> tuple[bool, bool]:
    """Valid points as a line in the server's colour; overloaded ones as hollow markers in
    that colour; invalid ones as grey crossed circles.

    Returns whether any (overloaded, invalid) point was drawn: the caller adds each legend
    entry once.
    """
    rows = rows.sort_values(x)
    good = rows[rows["valid"] & rows[y].notna()]
    over = is_overloaded(rows)
    late = rows[~rows["valid"] & over & rows[y].notna()]
    bad = rows[~rows["valid"] & ~over & rows[y].notna()]
    ax.plot(good[x], good[y], color=style.colour, marker=style.marker,
            linestyle=style.linestyle, linewidth=1.8, markersize=5.5,
            label=style.label if label else None)
    if not late.empty:
        draw_points(ax, late[x], late[y], style, overloaded=True)
    if not bad.empty:
        draw_points(ax, bad[x], bad[y], style, overloaded=False)
    return not late.empty, not bad.empty


def level_axis(ax: Axes, load_model: str, levels: Sequence[float]) -> None:
    ax.set_xscale("log", base=2 if load_model == "closed" else 10)
    ticks = sorted({float(v) for v in levels if v > 0})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("concurrent clients (closed loop)" if load_model == "closed"
                  else "offered rate, req/s (open loop)")
    ax.grid(True, which="major", alpha=0.3)


def legend(ax: Axes, any_invalid: bool, any_overloaded: bool = False) -> None:
    found, labels = ax.get_legend_handles_labels()
    handles: list[Any] = list(found)
    if any_overloaded:
        handles.append(overloaded_handle())
        labels.append(OVERLOADED_LABEL)
    if any_invalid:
        handles.append(invalid_handle())
        labels.append(INVALID_LABEL)
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)


def new_figure(size: tuple[float, float] = FIGSIZE_IN) -> Figure:
    return Figure(figsize=size, layout="constrained")


def save_figure(fig: Figure, base: Path,
                formats: Sequence[str] = ("png", "svg")) -> dict[str, Path]:
    """Write ``base.png`` and ``base.svg`` (Agg renders the PNG); returns path per format."""
    base.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt in formats:
        path = base.with_suffix(f".{fmt}")
        # A fixed salt and no date keep the SVG identical between reports of the same data;
        # text stays text (not a path per glyph), which halves what report.html embeds.
        with matplotlib.rc_context({"svg.hashsalt": "harness", "svg.fonttype": "none"}):
            fig.savefig(path, format=fmt, dpi=PNG_DPI,
                        metadata={"Date": None} if fmt == "svg" else None)
        paths[fmt] = path
    return paths
