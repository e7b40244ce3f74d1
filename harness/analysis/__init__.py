"""Analysis of run folders: typed frames, HDR histograms, plots, guidance and the report.

>>> from harness.analysis import load_run, write_report               # doctest: +SKIP
>>> df = load_run("results/20261124-231500-io_bound")                  # doctest: +SKIP
>>> caps = load_capacity("results/20261124-231500-io_bound")           # doctest: +SKIP
>>> write_report([Path("results/20261124-231500-io_bound")])           # doctest: +SKIP
"""

from harness.analysis.capacity import HeadToHead, ServerCapacity, head_to_head, server_capacities
from harness.analysis.families import multi_app, series_view
from harness.analysis.findings.capacity import capacity_guidance
from harness.analysis.findings.caveats import NOISY_CV_MAX
from harness.analysis.findings.common import CEILING_FRACTION, service_floor
from harness.analysis.findings.families import family_guidance
from harness.analysis.findings.record import Finding
from harness.analysis.guidance import compute_guidance, guidance_table
from harness.analysis.histograms import (
    histogram_ms,
    load_histogram,
    merge_histograms,
    merged_histogram,
    percentile_spectrum,
)
from harness.analysis.plots import (
    INVALID_LABEL,
    OVERLOADED_LABEL,
    plot_capacity,
    plot_latency,
    plot_resources,
    plot_spectrum,
    plot_throughput,
    plot_timeline,
    save_figure,
    server_styles,
)
from harness.analysis.report import write_report
from harness.analysis.rundata import (
    GROUP_KEYS,
    TRIAL_DTYPES,
    RunData,
    busy_trials,
    load_capacity,
    load_meta,
    load_run,
    load_runs,
    load_series,
    summarize,
)
from harness.analysis.stats import (
    SIGNIFICANCE_LEVEL,
    SINGLE_RUN_NOISE_FRACTION,
    compare_repeats,
    mean_ci,
)

__all__ = [
    "CEILING_FRACTION",
    "GROUP_KEYS",
    "INVALID_LABEL",
    "NOISY_CV_MAX",
    "OVERLOADED_LABEL",
    "SIGNIFICANCE_LEVEL",
    "SINGLE_RUN_NOISE_FRACTION",
    "TRIAL_DTYPES",
    "Finding",
    "HeadToHead",
    "RunData",
    "ServerCapacity",
    "busy_trials",
    "capacity_guidance",
    "compare_repeats",
    "compute_guidance",
    "family_guidance",
    "guidance_table",
    "head_to_head",
    "histogram_ms",
    "load_capacity",
    "load_histogram",
    "load_meta",
    "load_run",
    "load_runs",
    "load_series",
    "mean_ci",
    "merge_histograms",
    "merged_histogram",
    "multi_app",
    "percentile_spectrum",
    "plot_capacity",
    "plot_latency",
    "plot_resources",
    "plot_spectrum",
    "plot_throughput",
    "plot_timeline",
    "save_figure",
    "series_view",
    "server_capacities",
    "server_styles",
    "service_floor",
    "summarize",
    "write_report",
]
