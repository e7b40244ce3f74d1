"""Human-readable output of a LoadResult, in the spirit of wrk's."""

from __future__ import annotations

from harness.loadgen.histograms import percentiles_ms
from harness.loadgen.result import LoadResult
from harness.loadgen.spec import LoadSpec

_SPECTRUM = (("50%", "p50"), ("75%", "p75"), ("90%", "p90"), ("99%", "p99"),
             ("99.9%", "p99_9"), ("99.99%", "p99_99"), ("max", "max"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}ms"


def header(spec: LoadSpec) -> str:
    if spec.rate is not None:
        model = f"open loop, {spec.rate:g} req/s (connections as needed, up to " \
                f"{spec.connection_cap})"
    else:
        model = f"closed loop, {spec.concurrency} connections"
    warm = f" after {spec.warmup_s:g}s warm-up" if spec.warmup_s else ""
    total = sum(kind.weight for kind in spec.mix)
    mix = "".join(f"\n  {kind.weight / total:6.1%}  {kind.name}: {kind.method} {kind.path}"
                  for kind in spec.mix)
    return (f"Running {spec.duration_s:g}s test{warm} @ {spec.url}\n"
            f"  {model}, {spec.procs} generator process(es){mix}")


def render(result: LoadResult) -> str:
    lines: list[str] = []
    sections = [("Latency" + (" (from intended send time)" if result.service_time else ""),
                 result.latency)]
    if result.service_time is not None:
        sections.append(("Service time (from actual send)", result.service_time))
    for title, hist in sections:
        pct = percentiles_ms(hist)
        lines.append(f"  {title}: mean {_ms(pct['mean'])}")
        lines.extend(f"    {label:>7}  {_ms(pct[key]):>12}" for label, key in _SPECTRUM)
    lines.append(f"  {result.requests} requests in {result.duration_s:.2f}s"
                 f" ({result.peak_connections} connections at peak)")
    errors = result.errors
    if errors.get("total"):
        kinds = ", ".join(f"{k} {v}" for k, v in errors.items() if k != "total" and v)
        lines.append(f"  Errors: {errors['total']} ({kinds})")
    else:
        lines.append("  Errors: 0")
    if result.out_of_range:
        lines.append(f"  Latencies beyond the histogram's range: {result.out_of_range}")
    if result.kinds:
        lines.append(f"  {'kind':<24} {'requests':>9} {'errors':>7} {'p50':>12} {'p99':>12}")
        for name, kind in result.kinds.items():
            pct = percentiles_ms(kind.latency)
            lines.append(f"  {name:<24} {kind.requests:>9} {kind.errors.get('total', 0):>7} "
                         f"{_ms(pct['p50']):>12} {_ms(pct['p99']):>12}")
    lines.append(f"Requests/sec: {result.achieved_rps:10.2f}")
    if result.offered_rps is not None:
        lines.append(f"Offered/sec:  {result.offered_rps:10.2f}   "
                     f"(sent > {result.behind_threshold_ms:g} ms late: {result.behind}, "
                     f"{result.behind_generator} of them the generator's fault, "
                     f"{result.behind_at_cap} with every connection busy)")
    lines.append(f"Generator CPU: {result.generator_cpu_pct:.0f}% of one CPU "
                 f"({result.generator_cpu_s:.2f} CPU-s)")
    if result.saturated:
        lines.extend(f"WARNING: generator saturated: {reason}"
                     for reason in result.saturation_reasons)
    lines.extend(f"OVERLOADED: {reason}" for reason in result.overload_reasons)
    return "\n".join(lines)
