"""App families: the variants of a group compared (Django's wsgi.py and asgi.py, Flask vs
FastAPI, ...), and each framework's cost against raw on the same server.

Computed from valid summary rows only (closed loop, each row's repeats pooled). Within a group
(``AppFamily.groups``, as run.json recorded them) the variants are compared at the most
demanding closed-loop level where the most variants have a valid level, each variant's best
server at that level, the first WSGI variant the base. A comparison that cannot be made is a
caveat saying "no valid comparison" and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.analysis.families import (
    BASELINE_APP,
    _planned,
    _target_status,
    apps_in,
    display_name,
    family_groups,
    multi_app,
)
from harness.analysis.findings.common import (
    Context,
    ServiceFloor,
    at_ceiling,
    ceiling_phrase,
    service_floor,
    trial_ids_of,
)
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.stats import (
    SINGLE_RUN_NOISE_FRACTION,
    compare_repeats,
)
from harness.analysis.wording import (
    fmt_ms,
    fmt_ratio,
    fmt_rps,
    kind_label,
    level_phrase,
)

# How a variant (family, gateway) is named in a group's sentence when its family's name is
# not enough: by group, since raw is one side of the drivers and of the offload comparisons.
VARIANT_LABELS: dict[str, dict[tuple[str, str], str]] = {
    "django": {("django", "wsgi"): "sync views from wsgi.py",
               ("django", "asgi"): "sync views from asgi.py",
               ("django-async", "asgi"): "async views from asgi.py"},
    "drivers": {("raw", "wsgi"): "psycopg's pool under WSGI",
                ("raw", "asgi"): "psycopg's async pool under ASGI",
                ("raw-asyncpg", "asgi"): "asyncpg's pool under ASGI"},
    "offload": {("raw", "wsgi"): "CPU work inline in a sync worker",
                ("raw", "asgi"): "CPU work on the event loop",
                ("raw-thread", "asgi"): "CPU work on the loop's thread pool",
                ("raw-process", "asgi"): "CPU work in a process pool"},
}


# How a group's sentence starts; other groups join their families' names with " vs ".
GROUP_TITLES: dict[str, str] = {"django": "Django", "drivers": "The raw app's database driver",
                                "offload": "Where the raw app's CPU work runs"}


@dataclass(frozen=True)
class Variant:
    """A family on one gateway: what a group compares."""

    app: str
    gateway: str

    def label(self, both_gateways: bool, group: str = "") -> str:
        known = VARIANT_LABELS.get(group, {}).get((self.app, self.gateway))
        if known is not None:
            return known
        name = display_name(self.app)
        return f"{name} ({self.gateway.upper()})" if both_gateways else name


def _rps_values(run: RunData, row: pd.Series) -> list[float]:
    trials = run.trials[run.trials["trial_id"].isin(list(row["trial_ids"]))]
    return trials[trials["status"] == "ok"]["achieved_rps"].astype("float64").tolist()


def _reason_head(reason: object) -> str:
    """The head of a reason ("generator saturated"): the caveats give it in full."""
    return str(reason or "").split(";")[0].split(":")[0].strip()


def _not_valid(rows: pd.DataFrame) -> str:
    """"overloaded at 256 concurrent clients (errors ...); invalid at 1, 64 concurrent
    clients (generator saturated)": the levels that were not valid, by outcome."""
    if rows.empty:
        return "no level measured"
    bad = rows[~rows["valid"].astype(bool)].sort_values("level")
    if bad.empty:
        return "no valid level"
    parts = []
    for outcome, part in bad.groupby(bad["outcome"].astype(str).replace("valid", "invalid"),
                                     sort=True):
        servers = sorted(set(part["server"].astype(str)))
        reason = _reason_head(part["invalid_reason"].iloc[0])
        parts.append(f"{outcome} at {_levels(part)} concurrent clients"
                     + (f" on {', '.join(servers)}" if len(servers) > 1 else "")
                     + (f" ({reason})" if reason else ""))
    return "; ".join(parts)


def _difference(run: RunData, row: pd.Series, base: pd.Series, floor: ServiceFloor | None
                ) -> tuple[str, dict[str, float]]:
    """Why a ratio may not be a ranking: both at the load's own ceiling (Little's law), the
    repeats' test, the noise of a single run; or why it is a lower bound."""
    values: dict[str, float] = {}
    level = float(row["level"])
    if floor is not None and at_ceiling(row, floor) and at_ceiling(base, floor):
        values["ceiling_rps"] = floor.ceiling_rps(level)
        return (f"both at the load's own ceiling (Little's law: {ceiling_phrase(level, floor)})"
                f": not a ranking, a higher concurrency is needed to separate them", values)
    notes = []
    test = compare_repeats(_rps_values(run, row), _rps_values(run, base))
    ratio = float(row["achieved_rps"]) / float(base["achieved_rps"])
    if test is not None:
        values["p_value"] = test.p_value
        verdict = "significant" if test.significant else "no significant difference"
        notes.append(f"{verdict}, {test.text()}")
    elif max(ratio, 1 / ratio) < 1.0 + SINGLE_RUN_NOISE_FRACTION:
        notes.append(f"measured once: under {SINGLE_RUN_NOISE_FRACTION:.0%} apart is within "
                     f"run-to-run noise, not a ranking")
    faster = row if ratio >= 1.0 else base
    if floor is not None and at_ceiling(faster, floor):
        values["ceiling_rps"] = floor.ceiling_rps(level)
        notes.append(f"{faster['server']} sat at the load's own ceiling (Little's law: "
                     f"{ceiling_phrase(level, floor)}), so the gap may be larger")
    return "; ".join(notes), values


def _pick_level(valid: Mapping[Any, pd.DataFrame], need: int = 2) -> float | None:
    """The closed-loop level where the most of ``valid``'s keys have a valid row (ties: the
    highest); None when no level has ``need`` of them."""
    counts: dict[float, int] = {}
    for rows in valid.values():
        for level in set(rows["level"].astype("float64")):
            counts[level] = counts.get(level, 0) + 1
    eligible = [lv for lv, n in counts.items() if n >= need]
    return max(eligible, key=lambda lv: (counts[lv], lv)) if eligible else None


def _best_at(rows: pd.DataFrame, level: float) -> pd.Series | None:
    at = rows[rows["level"] == level]
    if at.empty:
        return None
    return at.sort_values(["achieved_rps", "server"], ascending=[False, True],
                          kind="stable").iloc[0]


def _closed(summary: pd.DataFrame) -> pd.DataFrame:
    """Closed-loop HTTP rows: where throughput compares servers."""
    if summary.empty:
        return summary
    keep = summary["load_model"] == "closed"
    if "protocol" in summary.columns:
        keep &= summary["protocol"].fillna("http") != "websocket"
    return summary[keep]


def _valid(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["valid"].astype(bool) & (rows["achieved_rps"] > 0)]


def _group_variants(run: RunData, summary: pd.DataFrame, members: Sequence[str]
                    ) -> list[Variant]:
    seen = {(str(a), str(g).lower()) for a, g in zip(summary["app"], summary["gateway"],
                                                      strict=True) if str(a) in members}
    seen |= {(a, g) for _s, g, a in _planned(run) if a in members}
    return [Variant(app=a, gateway=g) for a, g in
            sorted(seen, key=lambda v: (v[1] != "wsgi", v[1] != "asgi", members.index(v[0])))]


def _group_title(group: str, members: Sequence[str], variants: Sequence[Variant]) -> str:
    if group in GROUP_TITLES:
        return GROUP_TITLES[group]
    ordered = list(dict.fromkeys(v.app for v in variants)) or list(members)
    return " vs ".join(display_name(a) for a in ordered)


def _group_item(run: RunData, closed: pd.DataFrame, group: str, members: Sequence[str],
                kind: str, floor: ServiceFloor | None) -> Finding | None:
    variants = _group_variants(run, closed, members)
    if len(variants) < 2:
        return None
    apps = {v.app for v in variants}
    two_gateways = {a for a in apps if sum(v.app == a for v in variants) > 1}
    label = {v: v.label(v.app in two_gateways, group) for v in variants}
    title = _group_title(group, members, variants)
    rows_of = {v: closed[(closed["app"] == v.app)
                         & (closed["gateway"].str.lower() == v.gateway)] for v in variants}
    valid = {v: _valid(rows) for v, rows in rows_of.items() if not _valid(rows).empty}
    level = _pick_level(valid)
    if level is None:
        why = "; ".join(
            f"{label[v]}: valid at {_levels(valid[v])} concurrent clients only" if v in valid
            else f"{label[v]}: {_why_missing(run, v, rows_of[v])}" for v in variants
            if v not in valid or len(valid) >= 2)
        text = (f"{title}, {kind}: no valid comparison: no closed-loop level where two of "
                f"{', '.join(label[v] for v in variants)} were valid; {why}.")
        return Finding(topic="family_group", caveat=True, run_id=run.run_id, text=text,
                            trial_ids=_bad_ids(rows_of.values()),
                            values={})
    best = {v: row for v in variants if v in valid
            and (row := _best_at(valid[v], level)) is not None}
    base_variant = next(v for v in variants if v in best)
    base = best[base_variant]
    others = sorted((v for v in best if v != base_variant),
                    key=lambda v: (-float(best[v]["achieved_rps"]), label[v]))
    values: dict[str, float] = {"level": level, "rps_base": float(base["achieved_rps"]),
                                "p50_base_ms": float(base["p50_ms"])}
    parts = []
    for index, v in enumerate(others):
        row = best[v]
        ratio = float(row["achieved_rps"]) / float(base["achieved_rps"])
        key = f"{v.app}_{v.gateway}"
        values.update({f"ratio_{key}": ratio, f"rps_{key}": float(row["achieved_rps"]),
                       f"p50_{key}_ms": float(row["p50_ms"])})
        note, extra = _difference(run, row, base, floor)
        values.update({f"{k}_{key}": x for k, x in extra.items()})
        if index == 0:
            phrase = (f"{label[v]} on {row['server']} served {fmt_ratio(ratio)} the throughput "
                      f"of {label[base_variant]} on {base['server']} "
                      f"({fmt_rps(row['achieved_rps'])} vs {fmt_rps(base['achieved_rps'])} "
                      f"req/s; p50 {fmt_ms(row['p50_ms'])} ms vs {fmt_ms(base['p50_ms'])} ms")
        else:
            phrase = (f"{label[v]} on {row['server']} served {fmt_ratio(ratio)} "
                      f"({fmt_rps(row['achieved_rps'])} req/s; p50 {fmt_ms(row['p50_ms'])} ms")
        parts.append(phrase + (f"; {note})" if note else ")"))
    for v in variants:
        if v not in best:
            parts.append(f"{label[v]}: no valid comparison at this level "
                         f"({_why_missing(run, v, rows_of[v], level)})")
    text = (f"{title}, {kind}, {level_phrase('closed', level)}: " + "; ".join(parts) + ".")
    named = [best[v] for v in [base_variant, *others]]
    missing_ids = _bad_ids(rows_of[v][rows_of[v]["level"] == level]
                           for v in variants if v not in best)
    order = tuple(f"{label[v]} on {best[v]['server']}" for v in [base_variant, *others])
    headline = (f"{title}, {kind}, {level_phrase('closed', level)}: {order[1]} served "
                f"{fmt_ratio(values[f'ratio_{others[0].app}_{others[0].gateway}'])} "
                f"{order[0]}." if others else text)
    return Finding(topic="family_group", run_id=run.run_id, text=text, headline=headline,
                   others=order, question={"group": group, "title": title, "kind": kind,
                                           "level": level, "base": order[0],
                                           "sides": {f"{v.app}_{v.gateway}": side for v, side
                                                     in zip([base_variant, *others], order,
                                                            strict=True)}},
                        trial_ids=tuple(dict.fromkeys(trial_ids_of(*named) + missing_ids)),
                        values=values)


def _why_missing(run: RunData, variant: Variant, rows: pd.DataFrame,
                 level: float | None = None) -> str:
    if rows.empty:
        statuses = [s for server, gateway, app in _planned(run)
                    if app == variant.app and gateway == variant.gateway
                    and (s := _target_status(run, server, app)) is not None]
        return ("not measured (" + "; ".join(dict.fromkeys(statuses)) + ")" if statuses
                else "no closed-loop level measured")
    if level is not None:
        at = rows[rows["level"] == level]
        return _not_valid(at) if not at.empty else "not measured at this level"
    return _not_valid(rows)


def _levels(rows: pd.DataFrame) -> str:
    return ", ".join(f"{lv:g}" for lv in sorted(set(rows["level"].astype("float64"))))


def _bad_ids(parts: Iterable[pd.DataFrame]) -> tuple[str, ...]:
    ids: list[str] = []
    for rows in parts:
        for _, row in rows[~rows["valid"].astype(bool)].iterrows():
            ids.extend(str(t) for t in row["trial_ids"])
    return tuple(dict.fromkeys(ids))


def group_guidance(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """One item per comparison group with two or more variants in the run (module docs)."""
    closed = _closed(summary)
    planned_apps = sorted(set(apps_in(summary)) | {a for _s, _g, a in _planned(run)})
    groups = family_groups(run)
    names = sorted({g for app in planned_apps for g in groups.get(app, ())})
    kind = kind_label(run.meta)
    floor = service_floor(run, summary)
    items = []
    for group in names:
        members = [a for a in planned_apps if group in groups.get(a, ())]
        if len(members) < 2:  # one family on its two gateways is the WSGI vs ASGI finding
            continue
        item = _group_item(run, closed, group, members, kind, floor)
        if item is not None:
            items.append(item)
    return items


def _overhead_item(run: RunData, closed: pd.DataFrame, server: str, apps: Sequence[str],
                   kind: str, floor: ServiceFloor | None) -> Finding | None:
    mine = closed[closed["server"] == server]
    rows_of = {a: mine[mine["app"] == a] for a in [BASELINE_APP, *apps]}
    head = f"Framework cost on {server}, {kind}"
    raw_valid = _valid(rows_of[BASELINE_APP])
    if raw_valid.empty:
        status = _target_status(run, server, BASELINE_APP)
        why = (f"not measured ({status})" if status is not None
               else _not_valid(rows_of[BASELINE_APP]))
        return Finding(
            topic="family_overhead", caveat=True, run_id=run.run_id,
            text=(f"{head}: no valid comparison against raw: raw on {server}: {why}."),
            trial_ids=_bad_ids([rows_of[BASELINE_APP]]))
    valid = {a: _valid(rows_of[a]) for a in apps if not _valid(rows_of[a]).empty}
    # the level where raw and the most families were valid (ties: the highest)
    counts: dict[float, int] = {}
    for raw_level in set(raw_valid["level"].astype("float64")):
        counts[raw_level] = sum(bool((rows["level"] == raw_level).any())
                                for rows in valid.values())
    level = max((lv for lv, n in counts.items() if n >= 1), key=lambda lv: (counts[lv], lv),
                default=None)
    if level is None:
        why = "; ".join(f"{a}: {_why_missing_app(run, server, a, rows_of[a])}" for a in apps)
        return Finding(
            topic="family_overhead", caveat=True, run_id=run.run_id,
            text=(f"{head}: no valid comparison against raw: no closed-loop level where raw "
                  f"and a framework were both valid; {why}."),
            trial_ids=_bad_ids(rows_of[a] for a in apps))
    raw = _best_at(raw_valid, level)
    assert raw is not None  # the level came from raw_valid
    values: dict[str, float] = {"level": level, "rps_raw": float(raw["achieved_rps"]),
                                "p50_raw_ms": float(raw["p50_ms"])}
    found = {a: row for a in valid if (row := _best_at(valid[a], level)) is not None}
    parts = []
    ordered = sorted(found, key=lambda a: (-float(found[a]["achieved_rps"]), a))
    for app in ordered:
        row = found[app]
        ratio = float(row["achieved_rps"]) / float(raw["achieved_rps"])
        values.update({f"ratio_{app}": ratio, f"rps_{app}": float(row["achieved_rps"]),
                       f"p50_{app}_ms": float(row["p50_ms"])})
        note, extra = _difference(run, row, raw, floor)
        values.update({f"{k}_{app}": x for k, x in extra.items()})
        parts.append(f"{app} served {fmt_ratio(ratio)} raw's req/s "
                     f"({fmt_rps(row['achieved_rps'])} vs {fmt_rps(raw['achieved_rps'])}; "
                     f"p50 {fmt_ms(row['p50_ms'])} ms vs {fmt_ms(raw['p50_ms'])} ms"
                     + (f"; {note})" if note else ")"))
    for app in apps:
        if app not in found:
            at = rows_of[app][rows_of[app]["level"] == level]
            why = (_not_valid(at) if not at.empty
                   else _why_missing_app(run, server, app, rows_of[app]))
            parts.append(f"{app}: no valid comparison at this level ({why})")
    text = f"{head}, {level_phrase('closed', level)}: " + "; ".join(parts) + "."
    missing_ids = _bad_ids(rows_of[a][rows_of[a]["level"] == level]
                           for a in apps if a not in found)
    return Finding(topic="family_overhead", run_id=run.run_id, text=text,
                   others=tuple(ordered), question={"server": server, "level": level},
                   headline=(f"{head}: " + ", ".join(
                       f"{app} {fmt_ratio(values[f'ratio_{app}'])}" for app in ordered)
                       + " raw's req/s." if ordered else ""),
                        trial_ids=tuple(dict.fromkeys(
                            trial_ids_of(raw, *(found[a] for a in ordered)) + missing_ids)),
                        values=values)


def _why_missing_app(run: RunData, server: str, app: str, rows: pd.DataFrame) -> str:
    if rows.empty:
        status = _target_status(run, server, app)
        return f"not measured ({status})" if status is not None else "no closed-loop level"
    return _not_valid(rows)


def overhead_guidance(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """On each server that ran raw and a framework: the framework's cost (module docs)."""
    closed = _closed(summary)
    planned = _planned(run)
    servers = list(dict.fromkeys([*(str(s) for s in closed["server"]),
                                  *(s for s, _g, _a in planned)]))
    kind = kind_label(run.meta)
    floor = service_floor(run, summary)
    groups = family_groups(run)
    # raw's own variants (raw-asyncpg: another driver) are compared in their group, not as
    # a framework's cost
    variants = {a for a, g in groups.items() if set(g) & set(groups.get(BASELINE_APP, ()))}
    items = []
    for server in servers:
        apps = sorted({str(a) for a in closed[closed["server"] == server]["app"]}
                      | {a for s, _g, a in planned if s == server})
        frameworks = [a for a in apps if a != BASELINE_APP and a not in variants]
        if BASELINE_APP not in apps or not frameworks:
            continue
        item = _overhead_item(run, closed, server, frameworks, kind, floor)
        if item is not None:
            items.append(item)
    return items


def family_guidance(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """Within-group comparisons, then each framework's cost against raw (module docs).

    ``summary``: harness.analysis.rundata.summarize of ``run``, with real server names (not a
    series_view)."""
    if summary.empty or "app" not in summary.columns:
        return []
    return group_guidance(run, summary) + overhead_guidance(run, summary)


def find(ctx: Context) -> list[Finding]:
    if not multi_app(ctx.by_server_summary):
        return []
    return family_guidance(ctx.by_server_run, ctx.by_server_summary)
