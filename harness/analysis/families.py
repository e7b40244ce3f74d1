"""App families in a run: each (server, app) kept apart, and guidance within a family.

A run may measure several app families (``harness run --app django,raw``, the ``frameworks``
scenario): each target is a server running one family, and trials.csv says which in ``app``.
Everything that groups by ``server`` then needs the family too, or two families on the same
server become one row, one line. :func:`series_view` is the frame those use: in a run with
several apps its ``server`` column names the series, ``"uvicorn · django"``; a run with one
app comes back unchanged.

The guidance here is computed like guidance.py's, from valid summary rows only (closed loop,
each row's repeats pooled), every sentence carrying the trial ids its numbers came from:

- **Within a group** (``AppFamily.groups``, as run.json recorded them): the variants of the
  group (a family on one gateway: Django's sync views from wsgi.py, the same views from
  asgi.py, its async views) compared at the most demanding closed-loop level where the most
  variants have a valid level; each variant's best server at that level, the first WSGI variant
  the base. Flask vs Quart (the same route code), Flask vs FastAPI, Pyramid vs Starlette.
- **Framework cost**: on each server, every family against raw on the same server at a common
  level: throughput as a fraction of raw's, p50 against raw's.

A comparison that cannot be made (no level where two variants were valid, raw not measured)
is a caveat saying "no valid comparison" and why, with the trial ids of the levels that were
not valid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pandas as pd

from harness.analysis.rundata import RunData

# Between the server and the family in a series name: "uvicorn · django".
SERIES_SEPARATOR = " · "
# The family every other is measured against on the same server.
BASELINE_APP = "raw"
DISPLAY_NAMES: dict[str, str] = {
    "raw": "raw", "django": "Django", "django-async": "Django async", "flask": "Flask",
    "quart": "Quart", "fastapi": "FastAPI", "starlette": "Starlette", "pyramid": "Pyramid",
}
# Target statuses of run.json that do not mean "never measured" (unsupported: by design).
_MEASURED_STATUSES = ("ok", "", "unsupported")


# -- series: (server, app) ---------------------------------------------------------------------

def apps_in(frame: pd.DataFrame) -> list[str]:
    """The app families of a trials or summary frame, sorted (none without an ``app`` column)."""
    if "app" not in frame.columns or frame.empty:
        return []
    return sorted({str(a) for a in frame["app"].dropna() if str(a)})


def multi_app(frame: pd.DataFrame) -> bool:
    """Whether the frame holds more than one app family."""
    return len(apps_in(frame)) > 1


def series_name(server: str, app: str) -> str:
    """``"uvicorn · django"``: a server running one family."""
    return f"{server}{SERIES_SEPARATOR}{app}"


def series_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with ``server`` naming the series (``"uvicorn · django"``) when it holds more
    than one app family; the frame itself otherwise. Applying it twice changes nothing."""
    if not multi_app(frame):
        return frame
    named = pd.Series([
        server if not app or server.endswith(SERIES_SEPARATOR + app)
        else series_name(server, app)
        for server, app in zip(frame["server"].astype(str),
                               frame["app"].astype("string").fillna(""), strict=True)],
        index=frame.index, dtype="string")
    out = frame.copy()
    out["server"] = (named.astype("category")
                     if isinstance(frame["server"].dtype, pd.CategoricalDtype) else named)
    return out


def series_run(run: RunData) -> RunData:
    """The run as series (series_view of its trials; run.json targets named by series)."""
    if not multi_app(run.trials):
        return run
    targets = []
    for target in run.meta.get("targets") or []:
        server, app = str(target.get("server") or ""), str(target.get("app") or "")
        named = dict(target)
        if app and not server.endswith(SERIES_SEPARATOR + app):
            named["server"] = series_name(server, app)
        targets.append(named)
    meta = {**run.meta, "targets": targets}
    return dataclasses.replace(run, meta=meta, trials=series_view(run.trials))


# -- what run.json says about the families --------------------------------------------------

def family_groups(run: RunData) -> dict[str, tuple[str, ...]]:
    """Each family's comparison groups, as run.json records them (an older run's targets name
    their family once loaded: harness.analysis.migrate)."""
    groups: dict[str, tuple[str, ...]] = {}
    for target in run.meta.get("targets") or []:
        family = target.get("family")
        if isinstance(family, Mapping) and target.get("app"):
            groups[str(target["app"])] = tuple(str(g) for g in family.get("groups") or ())
    return groups


def _target_status(run: RunData, server: str, app: str) -> str | None:
    """"verify_failed: reason" when run.json says the target was never measured."""
    for target in run.meta.get("targets") or []:
        if str(target.get("server")) == server and str(target.get("app")) == app:
            status = str(target.get("status") or "")
            if status in _MEASURED_STATUSES:
                return None
            reason = str(target.get("reason") or "")
            return f"{status}: {reason}" if reason else status
    return None


def _planned(run: RunData) -> list[tuple[str, str, str]]:
    """(server, gateway, app) of every target run.json planned on a gateway it supports."""
    out = []
    for target in run.meta.get("targets") or []:
        if str(target.get("status") or "") == "unsupported" or not target.get("app"):
            continue
        out.append((str(target.get("server")), str(target.get("gateway") or "").lower(),
                    str(target["app"])))
    return out


# -- shared phrasing -------------------------------------------------------------------------

def display_name(app: str) -> str:
    return DISPLAY_NAMES.get(app, app)
