"""Capacity at the run's latency objective: each server's capacity, then best WSGI vs best ASGI
and the classic pair (gunicorn-sync vs uvicorn), with the head-to-head searches where the run
had them.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.capacity import (
    Objective,
    ServerCapacity,
    _capacity_order,
    best_of_each_gateway,
    head_to_head,
    objective_of,
    server_capacities,
)
from harness.analysis.findings.common import CLASSIC_PAIR, Context
from harness.analysis.findings.record import NO_DIFFERENCE, NOT_RANKED, RANKED, Finding
from harness.analysis.rundata import RunData, load_capacity
from harness.analysis.stats import (
    SINGLE_RUN_NOISE_FRACTION,
    TIE_PHRASE,
    compare_repeats,
    leading_block,
    ratio_ci,
)
from harness.analysis.wording import (
    comparison_headline,
    fmt_ratio,
    fmt_rps,
)


def _leaders(caps: list[ServerCapacity]) -> list[ServerCapacity]:
    """The highest capacity and those that cannot be told apart from it nor from each other
    (guidance.leading_block; ``caps`` highest mean first), by name."""
    return sorted(leading_block(caps, lambda c: c.figures),
                  key=lambda c: c.server)


def _compare(run: RunData, objective: Objective, topic: str, what: str, a: ServerCapacity,
             b: ServerCapacity, groups: tuple[list[ServerCapacity], ...] = ()) -> Finding:
    """``groups``: the servers tied with ``a`` and with ``b``: named beside it, and the winners
    (``Finding.winners``) when its side wins. The figures and the test are ``a``'s and
    ``b``'s own (guidance._wsgi_vs_asgi says why)."""
    named: dict[str, str] = {}
    tied_with: dict[str, list[ServerCapacity]] = {}
    for group in groups:
        if len(group) > 1:
            why = (TIE_PHRASE
                   if all(c.spread is not None for c in group)
                   else "measured once, within the noise of each other")
            for cap in group:
                others = " and ".join(c.label for c in group if c.server != cap.server)
                named[cap.server] = f"{cap.label} (tied with {others}: {why})"
                tied_with[cap.server] = group
    win, lose = (a, b) if a.mean >= b.mean else (b, a)
    ratio = win.mean / lose.mean if lose.mean > 0 else math.inf
    values: dict[str, float] = {"capacity_winner": win.mean, "capacity_loser": lose.mean,
                                "ratio": ratio}
    head = f"At {objective.text}, {what}: "
    figures = (f"{named.get(win.server, win.label)} sustained {win.figure_text()}, "
               f"{named.get(lose.server, lose.label)} {lose.figure_text()}")
    test = compare_repeats(win.figures, lose.figures, what="capacity")
    if lose.lower_bound:
        values.update(ranked=0.0)
        text = (f"{head}{figures}: {lose.server}'s figure is only a lower bound (its search "
                f"stopped: {'; '.join(lose.stop_reasons())}), so they cannot be ranked")
    elif test is not None and not test.significant:
        values.update(ranked=0.0, p_value=test.p_value)
        text = f"{head}no significant difference: {figures}, {fmt_ratio(ratio)}; {test.text()}"
    elif test is None and ratio < 1.0 + SINGLE_RUN_NOISE_FRACTION:
        values.update(ranked=0.0)
        text = (f"{head}{figures}: {fmt_ratio(ratio)}, measured once; a difference under "
                f"{SINGLE_RUN_NOISE_FRACTION:.0%} is within run-to-run noise, not a ranking")
    else:
        values.update(ranked=1.0)
        bound = "at least " if win.lower_bound else ""
        text = f"{head}{figures}: {bound}{fmt_ratio(ratio)}"
        if test is not None:
            values["p_value"] = test.p_value
            text += f" ({test.text()})"
    sides = tuple(tuple(sorted(c.server for c in tied_with.get(cap.server, [cap])))
                  for cap in (win, lose))
    ranked = values["ranked"] == 1.0
    verdict = RANKED if ranked else NOT_RANKED if lose.lower_bound else NO_DIFFERENCE
    why = (f"{lose.server}'s figure is only a lower bound" if lose.lower_bound
           else "measured once, within run-to-run noise" if test is None and not ranked else "")
    gateways = (win.gateway, lose.gateway)
    p_value = test.p_value if test is not None else None
    return Finding(
        topic=topic, text=text + ".", run_id=run.run_id,
        trial_ids=tuple(dict.fromkeys(win.trial_ids + lose.trial_ids)), values=values,
        winners=sides[0] if ranked else (), others=sides[1], verdict=verdict, why=why,
        ratio=ratio, ratio_ci=ratio_ci(win.figures, lose.figures), figures=(win.mean, lose.mean),
        unit="req/s", test=test.text() if test is not None else "", p_value=p_value,
        question={"objective": objective.text, "what": what, "where": f"at {objective.text}",
                  "searches": [len(win.figures), len(lose.figures)],
                  "winner_side": list(sides[0]), "other_side": list(sides[1]),
                  "winner": win.server, "other": lose.server,
                  "winner_gateway": gateways[0], "other_gateway": gateways[1]},
        headline=comparison_headline(where=f"At {objective.text}", what=what, verdict=verdict,
                                     sides=sides, gateways=gateways, ratio=ratio,
                                     p_value=p_value, why=why, verb="sustained",
                                     compared=(win.server, lose.server)))


def _list_headline(objective: Objective, caps: list[ServerCapacity]) -> str:
    measured = [c for c in caps if c.measured and c.mean > 0]
    if not measured:
        return f"Capacity at {objective.text}: no server's capacity was found."
    high, low = measured[0], measured[-1]  # server_capacities: highest mean first
    return (f"Capacity at {objective.text}: from {low.label} {fmt_rps(low.mean)} to "
            f"{high.label} {fmt_rps(high.mean)} req/s, over {len(measured)} servers.")


def capacity_guidance(run: RunData, capacity: pd.DataFrame | None = None
                      ) -> list[Finding]:
    """Each server's capacity at the objective, then best WSGI vs best ASGI and the classic
    pair (gunicorn-sync vs uvicorn) where both ran; empty without capacity.csv."""
    capacity = load_capacity(run.run_dir) if capacity is None else capacity
    objective = objective_of(run.meta, capacity)
    if capacity.empty or objective is None:
        return []
    caps = server_capacities(capacity)
    parts = []
    # WSGI first, then by name: a list, not a ranking (the comparisons below rank, where the
    # measurement can), so its order does not move with the noise
    for cap in sorted(caps, key=lambda c: (c.gateway.lower() != "wsgi", c.server)):
        part = f"{cap.label} {cap.figure_text()}"
        if not cap.measured:
            notes = "; ".join(dict.fromkeys(str(n) for n in cap.rows["note"] if str(n)))
            part += f" ({notes})" if notes else ""
        elif cap.lower_bound:
            part += f" (a lower bound, the search stopped: {'; '.join(cap.stop_reasons())})"
        parts.append(part)
    items = [Finding(
        topic="capacity", run_id=run.run_id,
        text=(f"Capacity at {objective.text} (open-loop rate search, latency from the intended "
              f"send): " + "; ".join(parts) + "."),
        trial_ids=tuple(dict.fromkeys(t for cap in caps for t in cap.trial_ids)),
        values={f"capacity_{cap.server}": cap.mean for cap in caps if cap.measured},
        others=tuple(c.server + ("" if c.measured and not c.lower_bound else " (not found)")
                     for c in sorted(caps, key=lambda c: (c.gateway.lower() != "wsgi",
                                                          c.server))),
        question={"objective": objective.text, "where": f"at {objective.text}"},
        headline=_list_headline(objective, caps))]
    measured = [c for c in caps if c.measured and c.mean > 0]
    by_gateway = {g: [c for c in measured if c.gateway.lower() == g] for g in ("wsgi", "asgi")}
    best = best_of_each_gateway(caps)
    if best is not None:
        # each gateway's best against the other's, the servers tied with it named beside it
        # (guidance._wsgi_vs_asgi says why not the weakest of the leading group)
        wsgi, asgi = best
        what = "best WSGI vs best ASGI"
        h2h = head_to_head(capacity)
        if h2h is not None and {wsgi.server, asgi.server} <= set(h2h.servers):
            # the head-to-head searched these two (the runner's pick is this rule's): their
            # figures, the test and who is tied with them take every search of theirs, the
            # plan's and those, when each of those found a capacity (else the plan's alone);
            # 3 searches a side tie servers by one stray search (docs/method.md).
            joined = [ServerCapacity(server=c.server, gateway=c.gateway, rows=pd.concat(
                [c.rows, h2h.servers[c.server].rows], ignore_index=True)) for c in (wsgi, asgi)]
            if all(c.measured for c in joined):
                wsgi, asgi = joined
                what += ", with the head-to-head searches"
                searched = {c.server: c for c in joined}
                by_gateway = {g: sorted((searched.get(c.server, c) for c in caps_g),
                                        key=_capacity_order)
                              for g, caps_g in by_gateway.items()}
        groups = (_leaders(by_gateway["wsgi"]), _leaders(by_gateway["asgi"]))
        items.append(_compare(run, objective, "capacity_wsgi_vs_asgi", what, wsgi, asgi,
                              groups))
        pair = {c.server: c for c in measured if c.server in CLASSIC_PAIR}
        if len(pair) == 2 and {c.server for g in groups for c in g} != set(CLASSIC_PAIR):
            items.append(_compare(run, objective, "capacity_classic",
                                  "classic sync WSGI vs an event loop",
                                  pair[CLASSIC_PAIR[0]], pair[CLASSIC_PAIR[1]]))
    return items


def find(ctx: Context) -> list[Finding]:
    return capacity_guidance(ctx.run)
