"""Findings, one module per topic, each with ``find(context) -> list[Finding]``; the
dispatcher that runs them in order is :mod:`harness.analysis.guidance`."""
