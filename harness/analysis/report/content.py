"""The words and tables the HTML and the Markdown report share, written once so the two
cannot drift."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from harness.analysis import websocket
from harness.analysis.families import multi_app
from harness.analysis.findings.upload import mb_per_s
from harness.analysis.rundata import RunData, busy_trials
from harness.analysis.wording import fmt_mb, fmt_ms, fmt_pct, fmt_rps
from harness.units import format_size

MAX_COMMAND_CHARS = 400


def short_id(trial_id: str) -> str:
    """``0007`` for ``0007-uvicorn-c64-r1``: unique within a run, short enough to cite."""
    head = trial_id.split("-", 1)[0]
    return head if head.isdigit() else trial_id


# The words both renderings share, written once so the HTML and Markdown reports cannot drift.
PLOT_LEGEND = ("WSGI servers in blues and greens, ASGI in oranges and reds; hollow markers "
               "in a server's colour are overloaded (the server did not keep up: a result, "
               "shown, not ranked); grey crossed markers are invalid (not ranked): the harness "
               "cannot vouch for them.")


RESULTS_NOTE = ("Throughput and CPU: mean of the measured repeats; p50/p99: the repeats' "
                "histograms added together; RSS: peak. CPU is percent of one core. A level is "
                "ranked only when every repeat is valid. Status: valid; overloaded (the server "
                "did not keep up: a result); invalid (the harness cannot vouch for the number). "
                "The capacity search's steps are in the capacity table and the trials list.")


CAPACITY_HEADING = "Capacity at the objective"


FAMILY_LEGEND = ("Several app families: a line per server · family, in the server's colour "
                 "with a marker per family.")


STATUS_VALID = "valid"


def status_text(outcome: str, reason: str) -> str:
    """The status cell of a results table: valid / overloaded: why / invalid (not ranked): why."""
    if outcome == "valid":
        return STATUS_VALID
    if outcome == "overloaded":
        return f"overloaded: {reason}" if reason else "overloaded"
    return f"invalid (not ranked): {reason}" if reason else "invalid (not ranked)"


def status_class(row: Mapping[str, str]) -> str:
    status = row.get("status", row.get("outcome", ""))
    if status.startswith("overloaded"):
        return "overloaded"
    return "" if status == STATUS_VALID else "invalid"


MODEL_HEADINGS = {"closed": "Closed loop (level = concurrent clients)",
                  "open": "Open loop (level = offered req/s)",
                  "broadcast": "Broadcast (level = subscribers)",
                  "idle": "Idle connections (level = connections held)"}


NO_FINDINGS = "No valid trial to rank."


NO_ANSWER = "No comparison of the two gateways in these runs."


REPORT_TITLE = "WSGI vs ASGI: gateway and server comparison"


RESULTS_HEADING = "Results per server and level"


# The WebSocket section, shown instead of the HTTP results tables for a WebSocket run.
WS_HEADING = "WebSocket results"


WS_MODEL_HEADINGS = {**MODEL_HEADINGS,
                     "closed": "Echo, closed loop (level = connections)",
                     "open": "Echo, open loop (level = offered messages/s)"}


WS_NOTE = ("A request here is one message round trip (a broadcast: one delivery to one "
           "subscriber): msgs/s counts them. Open-loop and broadcast latency is timed from the "
           "message's intended send time, so a stall cannot hide; service latency from the "
           "actual send. Errors: refused upgrades, wrong echoes, connections the server "
           "closed, deliveries that never arrived. Levels of different message sizes are never "
           "merged. KiB per connection: the growth of the server's memory (PSS, else RSS) "
           "while it held the idle connections, per connection.")


WS_NO_WSGI = ("WSGI servers: none in this run. They are unsupported for WebSocket: the WSGI "
              "interface has no way to hold a WebSocket connection.")


def ws_unsupported_text(run: RunData) -> str:
    """What the WebSocket section says about the servers that could not run it."""
    return websocket.unsupported_sentence(run.meta) or WS_NO_WSGI


def _num(value: Any, fmt: Callable[[float], str]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "–"
    return fmt(float(value))


def level_rows(summary: pd.DataFrame, with_app: bool | None = None) -> list[dict[str, str]]:
    """The results table; an ``app`` column when ``with_app`` (default: several families)."""
    with_app = multi_app(summary) if with_app is None else with_app
    # an upload run's levels differ by body size too, and move bytes, not just requests
    uploads = "upload_bytes" in summary.columns and bool(summary["upload_bytes"].notna().any())
    rows = []
    for _, r in summary.iterrows():
        threads = "" if pd.isna(r["threads"]) else f"×{r['threads']}"
        size = r["upload_bytes"] if uploads else None
        rows.append({
            "server": str(r["server"]),
            **({"app": str(r["app"])} if with_app else {}),
            "gateway": str(r["gateway"]).upper(),
            **({"upload": "–" if pd.isna(size) else format_size(int(size)),
                "MB/s": "–" if pd.isna(size) else _num(mb_per_s(r["achieved_rps"], size),
                                                        fmt_rps)} if uploads else {}),
            "level": f"{r['level']:g}",
            # measured of planned: a repeat that could not be measured is not in the means
            "repeats": (str(r["repeats"]) if r["measured_repeats"] == r["repeats"]
                        else f"{r['measured_repeats']} of {r['repeats']}"),
            "req/s": _num(r["achieved_rps"], fmt_rps),
            "CV": _num(r["rps_cv"] * 100 if pd.notna(r["rps_cv"]) else None, fmt_pct),
            "p50 ms": _num(r["p50_ms"], fmt_ms),
            "p99 ms": _num(r["p99_ms"], fmt_ms),
            "p99.9 ms": _num(r["p99_9_ms"], fmt_ms),
            "errors": f"{r['errors']} ({r['error_rate']:.2%})",
            "CPU %": _num(r["server_cpu_pct"], lambda v: f"{v:.0f}"),
            "RSS MB": _num(r["server_rss_mb"], fmt_mb),
            "PSS MB": _num(r["server_pss_mb"], fmt_mb),
            "req/CPU-s": _num(r["rps_per_cpu_s"], fmt_rps),
            "workers": ("–" if pd.isna(r["workers"]) else str(r["workers"])) + threads,
            "status": status_text(str(r["outcome"]) if r["valid"] or r["outcome"] != "valid"
                                  else "invalid", str(r["invalid_reason"])),
            "trials": ", ".join(short_id(t) for t in r["trial_ids"]),
        })
    return rows


_TRIAL_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("trial", "trial_id", str),
    ("server", "server", str),
    ("model", "load_model", str),
    ("phase", "phase", str),
    ("level", "level", lambda v: f"{v:g}"),
    ("repeat", "repeat", str),
    ("req/s", "achieved_rps", lambda v: _num(v, fmt_rps)),
    ("p50 ms", "p50_ms", lambda v: _num(v, fmt_ms)),
    ("p99 ms", "p99_ms", lambda v: _num(v, fmt_ms)),
    ("errors", "errors", str),
    ("CPU %", "server_cpu_pct", lambda v: _num(v, lambda x: f"{x:.0f}")),
    ("RSS MB", "server_rss_mb", lambda v: _num(v, fmt_mb)),
    ("PSS MB", "server_pss_mb", lambda v: _num(v, fmt_mb)),
    ("gen CPU %", "loadgen_cpu_pct", lambda v: _num(v, lambda x: f"{x:.0f}")),
    ("others CPU %", "others_cpu_pct", lambda v: _num(v, lambda x: f"{x:.0f}")),
    ("CPU slowdown", "cpu_slowdown", lambda v: _num(v, lambda x: f"{x:.2f}x")),
    ("outcome", "outcome", str),
    ("reason", "invalid_reason", str),
    ("notes", "notes", lambda v: "" if pd.isna(v) else str(v)),
)


def trial_rows(run: RunData) -> list[dict[str, str]]:
    columns = _TRIAL_COLUMNS
    if multi_app(run.trials):  # several app families: which one each trial ran
        at = [label for label, _c, _f in columns].index("server") + 1
        columns = (*columns[:at], ("app", "app", str), *columns[at:])
    busy = set(busy_trials(run.trials)["trial_id"].astype(str)) if not run.trials.empty \
        else set()
    rows = []
    for _, r in run.trials.iterrows():
        row = {label: fn(r[col]) for label, col, fn in columns}
        if str(r["trial_id"]) in busy and not row["notes"].startswith("busy machine"):
            row["notes"] = "; ".join(x for x in ("busy machine", row["notes"]) if x)
        rows.append(row)
    return rows


def run_facts(run: RunData) -> list[tuple[str, str]]:
    meta = run.meta
    scenario = meta.get("scenario") or {}
    env = meta.get("environment") or {}
    cpus = meta.get("cpus") or {}
    plan = meta.get("plan") or {}
    facts = [
        ("run", f"{run.run_id} ({meta.get('status', '?')}), {meta.get('started_at', '?')} → "
                f"{meta.get('finished_at') or '?'}"),
        ("folder", str(run.run_dir)),
        ("command line", " ".join(str(a) for a in meta.get("command_line") or [])),
        ("scenario", f"{scenario.get('name', '?')} (kind {scenario.get('kind', '?')}), "
                     f"endpoint {scenario.get('endpoint', '?')}"),
        ("scenario hash", str(scenario.get("hash", "?"))),
        ("CPU sets", f"server {cpus.get('server', '?')}, load generator "
                     f"{cpus.get('loadgen', '?')}"),
        ("CPU", f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} logical CPUs"
                + (f", governor {env['cpu_governor']}" if env.get("cpu_governor") else "")),
        ("OS", f"{env.get('os', '?')} (kernel {env.get('kernel', '?')})"),
        ("Python", f"{env.get('python', '?')} {env.get('python_implementation', '')}".strip()),
        ("git commit", str(env.get("git_commit") or "unknown")),
    ]
    if plan:
        facts.append(("plan", ", ".join(f"{k} {v}" for k, v in plan.items() if k != "levels")))
    if env.get("load_average_at_start"):
        facts.append(("load average at start", str(env["load_average_at_start"])))
    if env.get("env"):
        facts.append(("environment variables",
                      ", ".join(f"{k}={v}" for k, v in sorted(env["env"].items()))))
    if notice_of(run):
        facts.insert(0, ("NOTE", notice_of(run)))
    return facts


def notice_of(run: RunData) -> str:
    """run.json's ``notice``: a caution the run carries about itself; empty for a measurement."""
    return str(run.meta.get("notice") or "")


def target_rows(run: RunData) -> list[dict[str, str]]:
    rows = []
    for t in run.meta.get("targets") or []:
        command = " ".join(str(c) for c in t.get("command") or []) or str(t.get("app_spec") or "")
        if len(command) > MAX_COMMAND_CHARS:
            command = command[:MAX_COMMAND_CHARS] + " …"
        rows.append({
            "server": str(t.get("server", "")),
            "gateway": str(t.get("gateway", "")).upper(),
            "app": str(t.get("app", "")),
            "version": str(t.get("version") or ""),
            "workers": str(t.get("workers") if t.get("workers") is not None else "–"),
            "threads": str(t.get("threads") if t.get("threads") is not None else "–"),
            "preset note": str(t.get("preset_note") or "") + (
                f" (overridden: {', '.join(map(str, t['overridden']))})"
                if t.get("overridden") else ""),
            "status": str(t.get("status", "")) + (f": {t['reason']}" if t.get("reason") else ""),
            "command / app": command,
        })
    return rows


def run_versions(run: RunData) -> dict[str, str]:
    versions = (run.meta.get("environment") or {}).get("versions") or {}
    return {str(k): str(v) for k, v in sorted(versions.items())}


HTML_FILE = "report.html"


MARKDOWN_FILE = "report.md"


# The appendix: the per-level and per-trial tables, beside the report.
TRIALS_HTML_FILE = "trials.html"


TRIALS_MARKDOWN_FILE = "trials.md"
