"""A request mix (``kind = "mixed"``): the latency of the requests most users send while a few
heavy ones run beside them. Ranked by the most common kind's p99, the one a user feels; each
other kind's p99 and throughput are said beside it. Read from each trial's per-kind histograms
(histograms/*.by-name.json), repeats added together, never percentiles averaged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from harness.analysis.findings.common import Context, trial_ids_of
from harness.analysis.findings.record import NOT_RANKED, RANKED, Finding
from harness.analysis.histograms import load_kind_histogram, merge_histograms
from harness.analysis.rundata import RunData, load_kinds
from harness.analysis.wording import fmt_ms

MIXED_KIND = "mixed"


def is_mixed(meta: Mapping[str, Any]) -> bool:
    """Whether a run sent a request mix (its scenario's kind)."""
    return str((meta.get("scenario") or {}).get("kind") or "") == MIXED_KIND


def mix_kinds(meta: Mapping[str, Any]) -> list[tuple[str, float, str]]:
    """The mix's kinds as the scenario declared them: (name, share, path), most common first."""
    table = ((meta.get("scenario") or {}).get("definition") or {}).get("mix") or []
    kinds = [(str(k.get("name")), float(k.get("weight", 1.0)),
              str(k.get("path", "")) + (f"?{urlencode(k['params'])}"
                                        if isinstance(k.get("params"), Mapping) else ""))
             for k in table if isinstance(k, Mapping)]
    total = sum(weight for _, weight, _ in kinds) or 1.0
    return sorted(((name, weight / total, path) for name, weight, path in kinds),
                  key=lambda k: -k[1])


def kind_p99_ms(run: RunData, trial_ids: tuple[str, ...], kind: str) -> float | None:
    """``kind``'s p99 over the trials' histograms added together (None: none written)."""
    merged = merge_histograms(h for t in trial_ids
                              if (h := load_kind_histogram(run.run_dir, t, kind)) is not None)
    if merged is None or merged.get_total_count() == 0:
        return None
    return float(merged.get_value_at_percentile(99.0)) / 1000.0


def _kind_rps(kinds: pd.DataFrame, trial_ids: tuple[str, ...], kind: str) -> float | None:
    """``kind``'s answers per second, the mean over the trials (a load_kinds frame)."""
    rows = kinds[kinds["trial_id"].isin(list(trial_ids)) & (kinds["kind"] == kind)]
    return float(rows["achieved_rps"].mean()) if not rows.empty else None


def _finding(ctx: Context, rows: pd.DataFrame, level: float) -> Finding | None:
    kinds = mix_kinds(ctx.run.meta)
    if len(kinds) < 2:
        return None
    (light, light_share, _), *heavy = kinds
    measured = []
    for _, row in rows.iterrows():
        ids = tuple(str(t) for t in row["trial_ids"])
        p99 = kind_p99_ms(ctx.by_server_run, ids, light)
        if p99 is not None:
            measured.append((row, p99, {name: kind_p99_ms(ctx.by_server_run, ids, name)
                                        for name, _, _ in heavy}))
    if not measured:
        return None
    measured.sort(key=lambda m: (not bool(m[0]["valid"]), m[1], str(m[0]["server"])))
    valid = [m for m in measured if bool(m[0]["valid"])]
    heavy_name = heavy[0][0]

    def part(row: pd.Series, p99: float, others: Mapping[str, float | None]) -> str:
        rest = ", ".join(f"{name} {fmt_ms(v)} ms" for name, v in others.items() if v is not None)
        mark = "" if bool(row["valid"]) else f" [not ranked: {row['outcome']}]"
        return f"{row['server']} {fmt_ms(p99)} ms ({rest}){mark}"

    mix = ", ".join(f"{share:.0%} {name} {path}" for name, share, path in kinds)
    text = (f"At {level:g} req/s ({mix}), the {light} requests' p99, the one most users feel "
            f"(each other kind's beside it): " + "; ".join(part(*m) for m in measured) + ".")
    values: dict[str, float] = {}
    kind_rows = load_kinds(ctx.by_server_run)
    for row, p99, others in measured:
        server = str(row["server"])
        values[f"p99_{light}_{server}"] = p99
        for name, v in others.items():
            if v is not None:
                values[f"p99_{name}_{server}"] = v
        rps = _kind_rps(kind_rows, tuple(str(t) for t in row["trial_ids"]), heavy_name)
        if rps is not None:
            values[f"rps_{heavy_name}_{server}"] = rps
    if valid:
        best, worst = valid[0], valid[-1]
        headline = (f"{light.capitalize()} requests' p99 at {level:g} req/s with "
                    f"{1 - light_share:.0%} {heavy_name}: {fmt_ms(best[1])} ms on "
                    f"{best[0]['server']}, {fmt_ms(worst[1])} ms on {worst[0]['server']}.")
    else:
        headline = f"At {level:g} req/s no server's trial was valid: nothing is ranked."
    return Finding(topic="mixed", run_id=ctx.run.run_id, text=text, headline=headline,
                   verdict=RANKED if valid else NOT_RANKED,
                   winners=(str(valid[0][0]["server"]),) if valid else (),
                   others=tuple(str(m[0]["server"]) for m in valid[1:]), unit="ms",
                   question={"mixed": level, "kind": light, "heavy": heavy_name,
                             "heavy_share": 1 - light_share, "mix": mix},
                   trial_ids=trial_ids_of(*(m[0] for m in measured)), values=values)


def find(ctx: Context) -> list[Finding]:
    rows = ctx.summary[ctx.summary["load_model"].astype(str) == "open"]
    found = [_finding(ctx, rows[rows["level"] == level], level)
             for level in sorted(set(rows["level"].astype("float64")))]
    return [f for f in found if f is not None]
