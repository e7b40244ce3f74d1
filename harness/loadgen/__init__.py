"""The built-in HTTP/1.1 load generator: closed loop for peak throughput, open loop (constant
arrival rate, latency timed from the intended send) for honest latency.

>>> from harness.loadgen import LoadSpec, run_load
>>> result = run_load(LoadSpec(url="http://127.0.0.1:8000/hello", concurrency=64,
...                            duration_s=10.0))  # doctest: +SKIP
>>> result.achieved_rps, result.percentiles_ms(result.latency)["p99"]  # doctest: +SKIP
"""

from harness.loadgen.accounting import BEHIND_THRESHOLD_MS
from harness.loadgen.histograms import (
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_DIGITS,
    merge,
    new_histogram,
    percentiles_ms,
)
from harness.loadgen.kinds import ERROR_KINDS
from harness.loadgen.launch import check_reachable, run_load
from harness.loadgen.result import SATURATED_CPU_PCT, LoadResult, SeriesPoint
from harness.loadgen.spec import DEFAULT_MAX_CONNECTIONS, LoadSpec, parse_header, parse_url

__all__ = [
    "BEHIND_THRESHOLD_MS",
    "DEFAULT_MAX_CONNECTIONS",
    "ERROR_KINDS",
    "HIGHEST_US",
    "LOWEST_US",
    "SATURATED_CPU_PCT",
    "SIGNIFICANT_DIGITS",
    "LoadResult",
    "LoadSpec",
    "SeriesPoint",
    "check_reachable",
    "merge",
    "new_histogram",
    "parse_header",
    "parse_url",
    "percentiles_ms",
    "run_load",
]
