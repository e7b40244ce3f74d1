"""Capacity at the run's latency objective (capacity.csv): per-server figures, the table and the
guidance that compares them.

Each row of capacity.csv is one search (a target, one repeat): the highest open-loop rate that
met the objective, the trial that proves it and the first trial above it that failed. With
repeats, a server's capacity is the mean of its repeats' figures with the 95 % confidence
interval of that mean (Student's t), and two servers are ranked only when a t-test on the
logarithm of their repeats' capacities is significant (harness.analysis.guidance).

>>> caps = server_capacities(load_capacity("results/20261124-231500-io_bound"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import pairing
from harness.analysis.families import series_view
from harness.analysis.rundata import RunData, head_to_head_rows
from harness.analysis.stats import MeanCi, mean_ci
from harness.analysis.wording import fmt_ms, fmt_rps
from harness.errors import UsageError
from harness.slo import PERCENTILE_COLUMNS, Slo, parse_slo

# The statuses of harness.slo.SearchStatus, as the report words them.
STATUS_WORDS = {"found": "found", "at_least": "at least (the search stopped first)",
                "below_min": "below the search's minimum rate",
                "undetermined": "undetermined (a step could not be judged)"}
MEASURED_STATUSES = ("found", "at_least")
CAPACITY_NOTE = ("Capacity: the highest open-loop rate (latency timed from the intended send) "
                 "whose trial met the objective, found by a ramp and then bisection to 5 %; "
                 "each step is a trial (phase 'search'). 'proof' is the trial at the capacity, "
                 "'first failed' the lowest rate that missed it. With repeats (each restarts "
                 "the server), the server's row gives the mean of the repeats and the 95 % "
                 "confidence interval of that mean. Rows 'head to head k' are the searches "
                 "after the plan (run --head-to-head): the best WSGI and the best ASGI server "
                 "searched in turn, k-th pair; best WSGI vs best ASGI then takes every search "
                 "of the two, the plan's and these.")


@dataclass(frozen=True, kw_only=True)
class Objective:
    """The latency objective of a run: ``percentile`` (p99, ...) <= ``threshold_ms``."""

    percentile: str
    threshold_ms: float
    text: str

    @property
    def column(self) -> str:
        return PERCENTILE_COLUMNS.get(self.percentile, "p99_ms")


def objective_of(meta: Mapping[str, Any], capacity: pd.DataFrame) -> Objective | None:
    """run.json's plan.slo, else the objective capacity.csv names; None when neither does."""
    recorded = (meta.get("plan") or {}).get("slo")
    slo = Slo.from_dict(recorded)
    if isinstance(recorded, Mapping) and slo is not None and slo.threshold_ms \
            and math.isfinite(slo.threshold_ms):
        return Objective(percentile=slo.percentile, threshold_ms=slo.threshold_ms,
                         text=str(recorded.get("text")
                                  or f"{slo.percentile} <= {slo.threshold_ms:g} ms"))
    if capacity.empty:
        return None
    text = str(capacity["slo"].iloc[0])
    try:
        parsed = parse_slo(text, what="capacity.csv slo")
    except UsageError:
        return None
    return Objective(percentile=parsed.percentile, threshold_ms=parsed.threshold_ms, text=text)


@dataclass(frozen=True, kw_only=True)
class ServerCapacity:
    """One server's capacity searches (a row of capacity.csv per repeat)."""

    server: str
    gateway: str
    rows: pd.DataFrame  # its capacity.csv rows, by repeat

    @property
    def _with_figure(self) -> pd.DataFrame:
        # found, at_least, and an undetermined search that met the objective before it stopped
        rows = self.rows
        return rows[rows["status"].isin((*MEASURED_STATUSES, "undetermined"))
                    & rows["capacity_rps"].notna()]

    @property
    def figures(self) -> list[float]:
        """Each repeat's capacity (or lower bound), when it has one."""
        return [float(v) for v in self._with_figure["capacity_rps"]]

    @property
    def measured(self) -> bool:
        """Every repeat has a capacity or a lower bound: the server can be compared."""
        return len(self._with_figure) == len(self.rows) > 0

    @property
    def lower_bound(self) -> bool:
        """Some repeat's figure is only a lower bound: its search stopped before it failed
        (at_least), or at a step the harness could not vouch for (undetermined)."""
        return bool(self._with_figure["status"].isin(("at_least", "undetermined")).any())

    def stop_reasons(self) -> list[str]:
        """Why the searches that gave only a lower bound stopped (the notes' first clause)."""
        rows = self.rows[self.rows["status"].isin(("at_least", "undetermined"))]
        return list(dict.fromkeys(str(n).split(": ", 1)[0] for n in rows["note"] if str(n)))

    @property
    def mean(self) -> float:
        figures = self.figures
        return sum(figures) / len(figures) if figures else math.nan

    @property
    def spread(self) -> MeanCi | None:
        return mean_ci(self.figures) if self.measured else None

    @property
    def same_step(self) -> float | None:
        """The lowest failed rate, when every repeat's search ended on the same step (the same
        capacity, a failed rate above it): the spread over repeats is then zero, and what is
        known is the bracket between the two (the search's resolution), which the capacity
        table states; None otherwise."""
        figures = self.figures
        failed = self.rows["failed_rate"].dropna()
        if (len(figures) < 2 or len(set(figures)) != 1 or self.lower_bound
                or len(failed) != len(self.rows)):
            return None
        return float(failed.min())

    @property
    def trial_ids(self) -> tuple[str, ...]:
        ids = [str(t) for col in ("proof_trial", "failed_trial")
               for t in self.rows[col].dropna()]
        return tuple(dict.fromkeys(sorted(ids)))

    @property
    def label(self) -> str:
        return f"{self.server} ({self.gateway.upper()})"

    def figure_text(self) -> str:
        """``5,200 req/s``, ``at least 100,000 req/s``, with the spread over repeats."""
        if not self.measured:
            statuses = sorted(set(self.rows["status"].astype(str)))
            return " / ".join(STATUS_WORDS.get(s, s) for s in statuses)
        text = ("at least " if self.lower_bound else "") + f"{fmt_rps(self.mean)} req/s"
        spread = self.spread
        if spread is not None:  # one shape whatever the figures: `harness compare` pairs it
            per_repeat = ", ".join(fmt_rps(v) for v in self.figures)
            text += f" ({spread.text()}: {per_repeat})"
        return text


def _by_server(capacity: pd.DataFrame, sort: str) -> list[ServerCapacity]:
    capacity = series_view(capacity)
    return [ServerCapacity(server=str(server), gateway=str(rows["gateway"].iloc[0]),
                           rows=rows.sort_values(sort).reset_index(drop=True))
            for server, rows in capacity.groupby("server", sort=True)]


def server_capacities(capacity: pd.DataFrame) -> list[ServerCapacity]:
    """The plan's searches of capacity.csv (not the head-to-head ones) grouped by server,
    highest mean capacity first (unmeasured ones last). With several app families, by series:
    ``server`` then reads ``"uvicorn · django"``."""
    return sorted(_by_server(capacity[~head_to_head_rows(capacity)], "repeat"),
                  key=_capacity_order)


def _capacity_order(cap: ServerCapacity) -> tuple[bool, float, str]:
    """Highest mean capacity first, unmeasured ones last, then by name."""
    return (not cap.measured, -(cap.mean if cap.measured else 0.0), cap.server)


def best_of_each_gateway(caps: list[ServerCapacity]
                         ) -> tuple[ServerCapacity, ServerCapacity] | None:
    """The measured WSGI and ASGI servers of highest mean capacity; None unless both gateways
    have one. The rule is harness.pairing's, which the runner picks the head-to-head pair by."""
    by_name = {c.server: c for c in caps}
    best = pairing.best_of_each_gateway(  # every search: its figure, None where it has none
        pairing.Contender(name=c.server, gateway=c.gateway,
                          figures=[*c.figures, *[None] * (len(c.rows) - len(c.figures))])
        for c in caps)
    return None if best is None else (by_name[best[0]], by_name[best[1]])


@dataclass(frozen=True, kw_only=True)
class HeadToHead:
    """The searches run after the plan (run --head-to-head): two servers searched in turn,
    A B, B A, ..., each pair one right after the other."""

    servers: dict[str, ServerCapacity]  # by name: each one's head-to-head searches, by pair


def head_to_head(capacity: pd.DataFrame) -> HeadToHead | None:
    """The head-to-head searches of capacity.csv; None when the run had none."""
    rows = capacity[head_to_head_rows(capacity)]
    if rows.empty:
        return None
    return HeadToHead(servers={c.server: c for c in _by_server(rows, "pair")})


# -- guidance -----------------------------------------------------------------------------------







# -- the table ----------------------------------------------------------------------------------

def _why_failed(trial: pd.Series | None, objective: Objective) -> str:
    if trial is None:
        return ""
    if str(trial["outcome"]) != "valid" and str(trial["invalid_reason"]):
        return f"{trial['outcome']}: {trial['invalid_reason']}"
    value = trial[objective.column]
    if pd.notna(value) and float(value) > objective.threshold_ms:
        return f"{objective.percentile} {fmt_ms(float(value))} ms > {objective.threshold_ms:g} ms"
    errors = trial["error_rate"]
    return f"errors {float(errors):.2%}" if pd.notna(errors) else ""


def table_rows(run: RunData, capacity: pd.DataFrame, objective: Objective,
               short_id: Callable[[str], str]) -> list[dict[str, str]]:
    """A row per server and repeat (and, with repeats, the server's mean and spread)."""
    trials = run.trials.set_index("trial_id")

    def trial(tid: object) -> pd.Series | None:
        if tid is None or tid is pd.NA or str(tid) not in trials.index:
            return None
        found = trials.loc[str(tid)]
        return found if isinstance(found, pd.Series) else None

    latency = f"{objective.percentile} at capacity, ms"

    def search_row(cap: ServerCapacity, r: pd.Series, repeat: str) -> dict[str, str]:
        proof, failed = trial(r["proof_trial"]), trial(r["failed_trial"])
        return {
            "server": cap.server, "gateway": cap.gateway.upper(),
            "repeat": repeat,
            "status": STATUS_WORDS.get(str(r["status"]), str(r["status"])),
            "capacity req/s": ("–" if pd.isna(r["capacity_rps"]) else
                               ("≥ " if r["status"] != "found" else "")
                               + fmt_rps(float(r["capacity_rps"]))),
            "spread": "",
            latency: ("–" if proof is None or pd.isna(proof[objective.column])
                      else fmt_ms(float(proof[objective.column]))),
            "proof": "–" if proof is None else short_id(str(r["proof_trial"])),
            "first failed": ("–" if pd.isna(r["failed_rate"]) else
                             f"{fmt_rps(float(r['failed_rate']))} req/s: "
                             f"{_why_failed(failed, objective)}"),
            "failed trial": "–" if failed is None else short_id(str(r["failed_trial"])),
            "steps": str(r["steps"]),
            "note": str(r["note"]) if r["status"] != "found" else "",
        }

    rows: list[dict[str, str]] = []
    for cap in server_capacities(capacity):
        rows.extend(search_row(cap, r, str(r["repeat"])) for _, r in cap.rows.iterrows())
        if len(cap.rows) > 1:
            spread = cap.spread
            figures = cap.figures
            rows.append({
                "server": cap.server, "gateway": cap.gateway.upper(),
                "repeat": f"all {len(cap.rows)}",
                "status": "found" if cap.measured and not cap.lower_bound else
                          "at least" if cap.measured else "not every repeat found one",
                "capacity req/s": ("–" if not cap.measured else
                                   ("≥ " if cap.lower_bound else "") + fmt_rps(cap.mean)
                                   + " (mean)"),
                "spread": ("–" if spread is None else
                           f"the same in every repeat; {fmt_rps(cap.same_step)} failed"
                           if cap.same_step is not None else
                           f"95 % CI of the mean {fmt_rps(spread.low)}–{fmt_rps(spread.high)}"
                           f"; range {fmt_rps(min(figures))}–{fmt_rps(max(figures))}"),
                latency: "", "proof": "", "first failed": "", "failed trial": "",
                "steps": str(int(cap.rows["steps"].sum())), "note": "",
            })
    h2h = head_to_head(capacity)
    for cap in h2h.servers.values() if h2h is not None else ():
        rows.extend(search_row(cap, r, f"head to head {r['pair']}")
                    for _, r in cap.rows.iterrows())
    return rows
