"""What the topic modules of findings/ share: the rows a finding ranks, the servers tied with
the best, Little's-law ceilings, and the trial ids a finding cites.

Little's law. In closed loop, N clients on work that takes at least D seconds cannot pass
N / D req/s. D is the scenario's declared wait when its path says one (``/io?ms=50``: 0.05 s,
a floor no server can beat), else the smallest p50 of any valid closed-loop level of the run
(the fastest server's unloaded latency: a floor measured on this machine). A server at or above
CEILING_FRACTION of N / D sits at the load's own ceiling: two such servers are not ranked at
that level, the report says a higher concurrency is needed to separate them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.analysis.rundata import RunData
from harness.analysis.stats import (
    MIN_REPEATS_FOR_STATS,
    SINGLE_RUN_NOISE_FRACTION,
    TIE_PHRASE,
    leading_block,
)
from harness.analysis.wording import fmt_ms, fmt_rps, level_phrase, row_label

# The pair most teams weigh: gunicorn's sync workers against uvicorn's event loop.
CLASSIC_PAIR = ("gunicorn-sync", "uvicorn")


# A closed-loop level whose throughput reaches this fraction of N / D is at the load's ceiling.
CEILING_FRACTION = 0.90


# The wait a scenario's path declares: /io?ms=50
_DECLARED_WAIT_RE = re.compile(r"[?&]ms=(\d+(?:\.\d+)?)")


def leaders(rows: pd.DataFrame, column: str, figures: Callable[[pd.Series], list[float]], *,
            lowest: bool = False) -> list[pd.Series]:
    """The best row by ``column`` and the rows that cannot be told apart from it nor from each
    other (``leading_block``), by server name.

    A ranking between servers the measurement cannot separate changes from run to run; naming
    them together is what a second run confirms. ``figures``: a row's repeats' figures."""
    ordered = rows.sort_values([column, "server"], ascending=[lowest, True], kind="stable")
    group = leading_block([row for _, row in ordered.iterrows()],
                          lambda row: figures(row) or [float(row[column])], lowest=lowest)
    return sorted(group, key=lambda r: str(r["server"]))


def group_label(group: Sequence[pd.Series]) -> str:
    """``uvicorn (ASGI)``; ``granian-asgi (ASGI) and uvicorn (ASGI)`` (by name: a stable text)."""
    names = [row_label(r) for r in sorted(group, key=lambda r: str(r["server"]))]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def tie_phrase(group: Sequence[pd.Series], repeated: bool | None = None) -> str:
    """Why a group is named together (empty for one row). ``repeated``: whether the figures
    had repeats (default: every row's ``repeats``)."""
    if len(group) < 2:
        return ""
    if repeated is None:
        repeated = all(int(r.get("repeats", 1) or 1) >= MIN_REPEATS_FOR_STATS for r in group)
    return (TIE_PHRASE if repeated else
            f"measured once, within {SINGLE_RUN_NOISE_FRACTION:.0%} of each other: not a "
            f"ranking")


def members_text(group: Sequence[pd.Series], part: Callable[[pd.Series], str],
                 repeated: bool | None = None) -> str:
    """Each row of a group (``part``), then why they are named together."""
    text = "; ".join(part(r) for r in group)
    return text + (f" ({tie_phrase(group, repeated)})" if len(group) > 1 else "")


def indistinct(best: Sequence[pd.Series], worst: Sequence[pd.Series], rows: pd.DataFrame
               ) -> list[pd.Series] | None:
    """Every row, by server name, when the best group and the worst share a server (the
    extremes cannot be told apart); None when they do not."""
    if not {str(r["server"]) for r in best} & {str(r["server"]) for r in worst}:
        return None
    return sorted((r for _, r in rows.iterrows()), key=lambda r: str(r["server"]))


def ends_winners(best: Sequence[pd.Series], every: Sequence[pd.Series] | None
                 ) -> tuple[str, ...]:
    """The winners (``Finding.winners``) of a sentence that names both ends of a ranking
    (the most and the least efficient, memory, tail latency): the best end's servers; none when
    the two ends cannot be told apart (``every``, from ``indistinct``).

    The best end, as for best WSGI vs best ASGI: which servers are named with the worst end is
    a gap near the tie margin, and moves from run to run (docs/method.md)."""
    return () if every is not None else tuple(sorted(str(r["server"]) for r in best))


def trial_figures(run: RunData, row: pd.Series, column: str) -> list[float]:
    """A summary row's measured repeats' ``column`` from trials.csv."""
    trials = run.trials.set_index("trial_id")
    rows = trials.loc[[t for t in row["trial_ids"] if t in trials.index]]
    return [float(v) for v in rows[rows["status"] == "ok"][column] if pd.notna(v)]


@dataclass(frozen=True, kw_only=True)
class ServiceFloor:
    """D: the least time one request takes in this run (module docstring), and its source."""

    seconds: float
    source: str
    trial_ids: tuple[str, ...] = ()
    declared: bool = False  # the scenario's declared wait, not a measured floor

    def ceiling_rps(self, clients: float) -> float:
        return clients / self.seconds


def service_floor(run: RunData, summary: pd.DataFrame) -> ServiceFloor | None:
    """The scenario's declared wait, else the smallest p50 of a valid closed-loop level."""
    endpoint = str((run.meta.get("scenario") or {}).get("endpoint") or "")
    if not endpoint and not run.trials.empty:
        endpoint = str(run.trials["endpoint"].iloc[0])
    match = _DECLARED_WAIT_RE.search(endpoint)
    if match and float(match.group(1)) > 0:
        return ServiceFloor(seconds=float(match.group(1)) / 1000.0, declared=True,
                            source=f"the scenario's declared wait, ms={match.group(1)} in "
                                   f"{endpoint}")
    closed = summary[(summary["load_model"] == "closed") & summary["valid"]
                     & (summary["p50_ms"] > 0)] if not summary.empty else summary
    if closed.empty:
        return None
    row = best_row(closed, "p50_ms", lowest=True)
    return ServiceFloor(
        seconds=float(row["p50_ms"]) / 1000.0, trial_ids=trial_ids_of(row),
        source=(f"the smallest p50 of any valid closed-loop level, {fmt_ms(row['p50_ms'])} ms "
                f"({row['server']} at {level_phrase('closed', row['level'])})"))


def at_ceiling(row: pd.Series, floor: ServiceFloor | None) -> bool:
    """Whether a closed-loop level reached CEILING_FRACTION of N / D."""
    if floor is None or row["load_model"] != "closed" or math.isnan(row["achieved_rps"]):
        return False
    return bool(row["achieved_rps"] >= CEILING_FRACTION * floor.ceiling_rps(row["level"]))


def ceiling_phrase(level: float, floor: ServiceFloor) -> str:
    return (f"{level:g} clients / {fmt_ms(1000 * floor.seconds)} ms = "
            f"{fmt_rps(floor.ceiling_rps(level))} req/s")


def trial_ids_of(*rows: pd.Series) -> tuple[str, ...]:
    ids: list[str] = []
    for row in rows:
        ids.extend(str(t) for t in row["trial_ids"])
    return tuple(dict.fromkeys(ids))


def best_row(rows: pd.DataFrame, column: str = "achieved_rps", *, lowest: bool = False
             ) -> pd.Series:
    # Ties go to the first server by name, so the same data always gives the same sentence.
    ordered = rows.sort_values([column, "server"], ascending=[lowest, True], kind="stable")
    return ordered.iloc[0]


def ranked_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows a finding may rank: valid, with throughput."""
    return summary[summary["valid"] & (summary["achieved_rps"] > 0)]


def servers_per_level(rows: pd.DataFrame) -> dict[float, int]:
    counts = rows.groupby("level")["server"].nunique()
    return {float(level): int(n) for level, n in zip(counts.index.tolist(), counts.tolist(),
                                                      strict=True)}


def pick_level(rows: pd.DataFrame) -> tuple[str, float] | None:
    """The level with the most servers in ``rows`` (ties: the highest load), closed loop first."""
    for load_model in ("closed", "open"):
        counts = servers_per_level(rows[rows["load_model"] == load_model])
        if counts:
            return load_model, max(counts, key=lambda lv: (counts[lv], lv))
    return None


def rps_values(run: RunData, row: pd.Series) -> list[float]:
    """The measured repeats' throughput of a summary row, from trials.csv."""
    return trial_figures(run, row, "achieved_rps")


def peaks(ranked: pd.DataFrame) -> pd.DataFrame:
    """Each server's highest-throughput valid level (closed loop when it has one)."""
    rows = []
    for _server, part in ranked.groupby("server"):
        closed = part[part["load_model"] == "closed"]
        rows.append(best_row(closed if not closed.empty else part))
    return pd.DataFrame(rows)


@dataclass(frozen=True, kw_only=True)
class Context:
    """What every topic's ``find`` reads. With several app families, ``run`` and ``summary``
    are the series view (a series per server and family, ``"uvicorn · django"``), and
    ``by_server_run``/``by_server_summary`` keep the real server names."""

    run: RunData
    summary: pd.DataFrame
    ranked: pd.DataFrame
    kind: str
    floor: ServiceFloor | None
    by_server_run: RunData
    by_server_summary: pd.DataFrame
