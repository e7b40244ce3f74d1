"""Background work after the answer (load models ``background`` and ``sigterm``,
harness.tasktrials): how fast each server gets through the work it promised, and how much of
it it loses when it is stopped with SIGTERM.

Read from trials.csv's rows of those levels, summed over repeats: ``tasks_finished`` over the
measured window (the rate of finished tasks) beside the answers' p99; on the SIGTERM level,
``tasks_accepted`` (2xx answers the clients received) against ``tasks_finished`` once every
process of the server had exited (lost: the difference), and ``exit_after_s`` (empty: it had
to be killed at harness.tasktrials.SIGTERM_EXIT_TIMEOUT_S).

A server keeps up when it finished at least KEPT_UP_FRACTION of the tasks of the server that
finished the most at that level (the clients pause after each answer, so a server that answers
at once is offered the same rate as any other: what it finishes below that, requests waited
for earlier work, or for the server's CPU). A server loses nothing when every accepted task
finished. Statements of counts, not rankings: a count is
exact, repeats only add to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.analysis.findings.common import Context
from harness.analysis.findings.record import STATED, Finding
from harness.analysis.wording import HEADLINE_NAMES_MAX, fmt_ms, fmt_rps, names_text
from harness.tasktrials import SIGTERM_EXIT_TIMEOUT_S

BACKGROUND_LOAD_MODEL = "background"
SIGTERM_LOAD_MODEL = "sigterm"
KEPT_UP_FRACTION = 0.8


def is_background(meta: Mapping[str, Any]) -> bool:
    """Whether a run's plan holds background levels (run.json plan.levels)."""
    levels = (meta.get("plan") or {}).get("levels") or []
    return any(level.get("load_model") in (BACKGROUND_LOAD_MODEL, SIGTERM_LOAD_MODEL)
               for level in levels)


@dataclass(frozen=True, kw_only=True)
class ServerTasks:
    """One server's trials at one level, summed over repeats."""

    server: str
    trial_ids: tuple[str, ...]
    duration_s: float
    accepted: int
    started: int
    finished: int
    p99_ms: float | None  # the worst repeat's
    exit_after_s: float | None  # the slowest repeat's; None: killed in one of them
    reason: str  # why a repeat was not valid, if one was not

    @property
    def finished_per_s(self) -> float:
        return self.finished / self.duration_s if self.duration_s else 0.0

    @property
    def lost(self) -> int:
        return max(0, self.accepted - self.finished)


def server_tasks(trials: pd.DataFrame, load_model: str, level: float) -> list[ServerTasks]:
    """Every server's measured trials of ``load_model`` at ``level`` (status ok)."""
    rows = trials[(trials["load_model"].astype("string") == load_model)
                  & (trials["level"] == level) & (trials["status"].astype("string") == "ok")]
    out = []
    for server, group in rows.groupby(rows["server"].astype("string"), sort=True):
        exits = group["exit_after_s"].astype("float64")
        p99 = group["p99_ms"].astype("float64").dropna()
        reasons = [str(r) for r in group["invalid_reason"] if str(r)]
        out.append(ServerTasks(
            server=str(server), trial_ids=tuple(str(t) for t in group["trial_id"]),
            duration_s=float(group["duration_s"].astype("float64").sum()),
            accepted=int(group["tasks_accepted"].fillna(0).sum()),
            started=int(group["tasks_started"].fillna(0).sum()),
            finished=int(group["tasks_finished"].fillna(0).sum()),
            p99_ms=float(p99.max()) if len(p99) else None,
            exit_after_s=None if exits.isna().any() else float(exits.max()),
            reason=reasons[0] if reasons else ""))
    return out


def _levels(trials: pd.DataFrame, load_model: str) -> list[float]:
    rows = trials[trials["load_model"].astype("string") == load_model]
    return sorted(set(rows["level"].astype("float64").dropna()))


def _rate_part(s: ServerTasks) -> str:
    p99 = f", answers p99 {fmt_ms(s.p99_ms)} ms" if s.p99_ms is not None else ""
    caveat = "; not vouched for: see the caveats" if s.reason else ""
    return f"{s.server} {fmt_rps(s.finished_per_s)}/s ({s.finished} finished{p99}{caveat})"


def _rate_finding(ctx: Context, level: float, servers: list[ServerTasks]) -> Finding:
    best = max(s.finished_per_s for s in servers)
    ordered = sorted(servers, key=lambda s: (-s.finished_per_s, s.server))
    kept = [s for s in ordered if s.finished_per_s >= KEPT_UP_FRACTION * best]
    held = [s for s in ordered if s not in kept]
    text = (f"Work after each answer, {level:g} clients: tasks finished a second: "
            + "; ".join(_rate_part(s) for s in ordered) + "."
            + (f" Under {KEPT_UP_FRACTION:.0%} of the most: "
               + names_text([s.server for s in held]) + "." if held else ""))
    headline = (f"Background work at {level:g} clients: "
                f"{names_text([s.server for s in kept], HEADLINE_NAMES_MAX)} finished "
                f"{fmt_rps(best)} tasks/s"
                + (f"; {names_text([s.server for s in held], HEADLINE_NAMES_MAX)} "
                   f"{fmt_rps(min(s.finished_per_s for s in held))}–"
                   f"{fmt_rps(max(s.finished_per_s for s in held))}" if held else "") + ".")
    values = {f"finished_per_s_{s.server}": s.finished_per_s for s in servers}
    values.update({f"p99_{s.server}": s.p99_ms for s in servers if s.p99_ms is not None})
    return Finding(topic="background", run_id=ctx.run.run_id, text=text, headline=headline,
                   verdict=STATED, winners=tuple(s.server for s in kept),
                   others=tuple(s.server for s in held), unit="tasks/s",
                   question={"background": level},
                   trial_ids=tuple(t for s in ordered for t in s.trial_ids), values=values)


def _exit_text(s: ServerTasks) -> str:
    return (f"killed: it had not exited {SIGTERM_EXIT_TIMEOUT_S:g} s after SIGTERM"
            if s.exit_after_s is None
            else f"exited after {s.exit_after_s:.1f} s")


def _sigterm_finding(ctx: Context, level: float, servers: list[ServerTasks]) -> Finding:
    ordered = sorted(servers, key=lambda s: (-s.lost, s.exit_after_s is not None, s.server))
    kept = [s for s in ordered if s.lost == 0]
    lost = [s for s in ordered if s.lost > 0]
    parts = [f"{s.server} lost {s.lost} of {s.accepted} ({s.started} started, {s.finished} "
             f"finished; {_exit_text(s)})" for s in ordered]
    text = (f"SIGTERM halfway through {level:g} clients' background work, the tasks a server "
            "had accepted (answered 200) and never finished: " + "; ".join(parts) + ".")
    headline = ("Background tasks lost on SIGTERM: "
                + (", ".join(f"{s.server} {s.lost} of {s.accepted}"
                             for s in lost[:HEADLINE_NAMES_MAX])
                   + (f" and {len(lost) - HEADLINE_NAMES_MAX} more"
                      if len(lost) > HEADLINE_NAMES_MAX else "") if lost else "none")
                + (f"; none on {names_text([s.server for s in kept], HEADLINE_NAMES_MAX)}"
                   if kept and lost else "") + ".")
    values: dict[str, float] = {}
    for s in servers:
        values[f"lost_{s.server}"] = float(s.lost)
        values[f"accepted_{s.server}"] = float(s.accepted)
        if s.exit_after_s is not None:
            values[f"exit_s_{s.server}"] = s.exit_after_s
    return Finding(topic="background_sigterm", run_id=ctx.run.run_id, text=text,
                   headline=headline, verdict=STATED, winners=tuple(s.server for s in kept),
                   others=tuple(s.server for s in lost), unit="tasks",
                   question={"background_sigterm": level,
                             "killed": [s.server for s in servers if s.exit_after_s is None]},
                   trial_ids=tuple(t for s in ordered for t in s.trial_ids), values=values)


def find(ctx: Context) -> list[Finding]:
    trials = ctx.run.trials
    found = []
    for level in _levels(trials, BACKGROUND_LOAD_MODEL):
        servers = server_tasks(trials, BACKGROUND_LOAD_MODEL, level)
        if servers:
            found.append(_rate_finding(ctx, level, servers))
    for level in _levels(trials, SIGTERM_LOAD_MODEL):
        servers = server_tasks(trials, SIGTERM_LOAD_MODEL, level)
        if servers:
            found.append(_sigterm_finding(ctx, level, servers))
    return found
