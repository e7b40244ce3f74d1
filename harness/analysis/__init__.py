"""Analysis of run folders: typed frames, HDR histograms, plots, guidance and the report.

>>> from harness.analysis import load_run, write_report               # doctest: +SKIP
>>> df = load_run("results/20261124-231500-io_bound")                  # doctest: +SKIP
>>> write_report([Path("results/20261124-231500-io_bound")])           # doctest: +SKIP
"""

from harness.analysis.frames import (
    GROUP_KEYS,
    TRIAL_DTYPES,
    RunData,
    histogram_ms,
    load_histogram,
    load_meta,
    load_run,
    load_runs,
    load_series,
    merge_histograms,
    merged_histogram,
    percentile_spectrum,
    summarize,
)
from harness.analysis.guidance import (
    NOISY_CV_MAX,
    SINGLE_RUN_NOISE_FRACTION,
    GuidanceItem,
    compute_guidance,
    guidance_table,
)
from harness.analysis.plots import (
    INVALID_LABEL,
    plot_latency,
    plot_resources,
    plot_spectrum,
    plot_throughput,
    plot_timeline,
    save_figure,
    server_styles,
)
from harness.analysis.report import write_report

__all__ = [
    "GROUP_KEYS",
    "INVALID_LABEL",
    "NOISY_CV_MAX",
    "SINGLE_RUN_NOISE_FRACTION",
    "TRIAL_DTYPES",
    "GuidanceItem",
    "RunData",
    "compute_guidance",
    "guidance_table",
    "histogram_ms",
    "load_histogram",
    "load_meta",
    "load_run",
    "load_runs",
    "load_series",
    "merge_histograms",
    "merged_histogram",
    "percentile_spectrum",
    "plot_latency",
    "plot_resources",
    "plot_spectrum",
    "plot_throughput",
    "plot_timeline",
    "save_figure",
    "server_styles",
    "summarize",
    "write_report",
]
