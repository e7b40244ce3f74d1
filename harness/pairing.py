"""Which WSGI and which ASGI server are the best of a run: one rule, on plain values, for both
that use it. The runner picks its head-to-head pair by it before any report exists
(harness.searches.best_of_each_gateway), and the report names best WSGI vs best ASGI by it
(harness.analysis.capacity.best_of_each_gateway), so the two always agree.

>>> best_of_each_gateway([Contender("gunicorn-sync", "WSGI", [60.0, 62.0]),
...                       Contender("uvicorn", "ASGI", [3500.0, 3900.0]),
...                       Contender("daphne", "ASGI", [4100.0, None])])  # one search found none
('gunicorn-sync', 'uvicorn')
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import NamedTuple


class Contender(NamedTuple):
    """A server and the figure of every one of its capacity searches (None: that search found
    no capacity)."""

    name: str
    gateway: str  # "wsgi" or "asgi", in any case
    figures: Sequence[float | None]


def best_of_each_gateway(contenders: Iterable[Contender]) -> tuple[str, str] | None:
    """The names of (best WSGI, best ASGI): the highest mean capacity over a server's searches,
    a server counted only when every one of its searches has a figure and their mean is above
    zero; ties by name. None unless both gateways have such a server."""
    best: dict[str, tuple[float, str]] = {}
    for contender in contenders:
        figures = [f for f in contender.figures if f is not None]
        if not figures or len(figures) < len(contender.figures):
            continue
        mean = statistics.fmean(figures)
        gateway = contender.gateway.lower()
        if mean > 0 and (gateway not in best
                         or (-mean, contender.name) < (-best[gateway][0], best[gateway][1])):
            best[gateway] = (mean, contender.name)
    if "wsgi" not in best or "asgi" not in best:
        return None
    return best["wsgi"][1], best["asgi"][1]
