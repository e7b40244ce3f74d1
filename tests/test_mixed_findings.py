"""A request mix's findings and "What to run" row, on a written run folder with known
per-kind histograms (the findings read histograms/*.by-name.json and kinds.csv)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.analysis.answers import answer_rows
from harness.analysis.findings.mixed import mix_kinds
from harness.analysis.guidance import compute_guidance
from harness.analysis.rundata import RunData, load_kinds
from harness.results import RunWriter
from tests.analysis_fixtures import histogram, meta, record
from tests.runhelpers import REPO, harness_cmd, read_rows

MIX = [{"name": "light", "path": "/io", "params": {"ms": 20}, "weight": 95},
       {"name": "heavy", "path": "/cpu", "params": {"n": 60000}, "weight": 5}]
# (server, app, gateway): light p99 (ms), heavy p99 (ms)
TARGETS = {("gunicorn-sync", "raw", "wsgi"): (30, 80),
           ("uvicorn", "raw", "asgi"): (70, 90),
           ("uvicorn", "raw-thread", "asgi"): (45, 150),
           ("uvicorn", "raw-process", "asgi"): (24, 60)}


def _mixed_run(run_dir: Path, *, invalid: str | None = None) -> RunData:
    writer = RunWriter(run_dir, meta(run_dir.name, scenario={
        "name": "mixed", "kind": "mixed", "endpoint": "95% light /io?ms=20, 5% heavy /cpu",
        "description": "a mix", "hash": "sha256:abc", "definition": {"mix": MIX}}))
    for i, ((server, app, gateway), (light_ms, heavy_ms)) in enumerate(TARGETS.items()):
        tid = f"{i:04d}-{server}+{app}-R90-r1"
        light = histogram([20_000] * 95 + [light_ms * 1000] * 5)
        heavy = histogram([50_000] * 9 + [heavy_ms * 1000])
        ok = invalid is None or app != invalid
        writer.append_trial(
            record(tid, server=server, app=app, gateway=gateway, load_model="open",
                   concurrency=None, rate=90.0, offered_rps=90.0, valid=ok,
                   invalid_reason="" if ok else "generator saturated",
                   outcome="valid" if ok else "invalid"),
            by_name={"light": {"latency_hdr": light.encode().decode("ascii")},
                     "heavy": {"latency_hdr": heavy.encode().decode("ascii")}},
            kinds=[{"trial_id": tid, "kind": "light", "path": "/io?ms=20", "share": 0.95,
                    "requests": 100, "errors": 0, "achieved_rps": 85.5,
                    "p99_ms": light_ms},
                   {"trial_id": tid, "kind": "heavy", "path": "/cpu?n=60000", "share": 0.05,
                    "requests": 10, "errors": 0, "achieved_rps": 4.5, "p99_ms": heavy_ms}])
    return RunData.load(run_dir)


def test_kinds_frame_joins_each_kind_to_its_trial(tmp_path: Path) -> None:
    run = _mixed_run(tmp_path / "run")
    kinds = load_kinds(run)
    assert len(kinds) == 2 * len(TARGETS)
    row = kinds[(kinds["app"] == "raw-thread") & (kinds["kind"] == "light")].iloc[0]
    assert row["server"] == "uvicorn" and row["level"] == 90.0 and row["p99_ms"] == 45.0
    assert mix_kinds(run.meta) == [("light", 0.95, "/io?ms=20"), ("heavy", 0.05, "/cpu?n=60000")]


def test_mixed_finding_ranks_the_common_kinds_p99_and_the_row_names_inline_and_sync(
        tmp_path: Path) -> None:
    run = _mixed_run(tmp_path / "run")
    findings = compute_guidance(run)
    mixed = [f for f in findings if f.topic == "mixed"]
    assert len(mixed) == 1
    f = mixed[0]
    assert f.winners == ("uvicorn · raw-process",)
    assert f.values["p99_light_uvicorn · raw"] == pytest.approx(70, rel=0.01)
    assert f.values["p99_heavy_uvicorn · raw-thread"] == pytest.approx(150, rel=0.01)
    assert f.values["rps_heavy_gunicorn-sync · raw"] == 4.5
    assert "light requests' p99" in f.text and "heavy" in f.text
    [row] = answer_rows(run, findings)
    assert row.run == "uvicorn · raw-process"
    assert row.instead_of == "uvicorn · raw-thread, uvicorn · raw and gunicorn-sync · raw"
    assert "p99 45.0 ms on uvicorn · raw-thread" in row.by
    assert "p99 24.0 ms on uvicorn · raw-process" in row.by
    assert "p99 70.0 ms on uvicorn · raw;" in row.by and "p99 30.0 ms on gunicorn-sync" in row.by


def test_an_invalid_trial_is_said_but_not_ranked(tmp_path: Path) -> None:
    run = _mixed_run(tmp_path / "run", invalid="raw-process")
    [f] = [f for f in compute_guidance(run) if f.topic == "mixed"]
    assert f.winners == ("gunicorn-sync · raw",)
    assert "uvicorn · raw-process 24.0 ms" in f.text and "not ranked" in f.text


@pytest.mark.e2e
def test_a_mixed_run_counts_each_kind_and_the_heavy_ones_block_uvicorns_loop(
        tmp_path: Path) -> None:
    """uvicorn computing inline against offloading to a process: every request of each kind
    answered and counted in kinds.csv, and the light requests' p99 at least the heavy work's
    length inline (the loop is blocked). At 40 req/s: about 6 heavy requests in 3 s, far
    below capacity."""
    out = tmp_path / "run"
    done = subprocess.run(
        harness_cmd("run", "--scenario", "mixed", "--quick", "--servers", "uvicorn",
                    "--app", "raw,raw-process", "--rate", "40", "--duration", "3s",
                    "--out", str(out)),
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = load_kinds(RunData.load(out))
    assert len(kinds) == 4 and set(kinds["kind"]) == {"light", "heavy"}
    assert (kinds["errors"] == 0).all() and (kinds["requests"] > 0).all()
    trials = {r["trial_id"]: r for r in read_rows(out / "trials.csv")}
    for trial_id, rows in kinds.groupby("trial_id"):
        assert int(trials[str(trial_id)]["requests"]) == int(rows["requests"].sum())
    inline = kinds[kinds["app"] == "raw"].set_index("kind")["max_ms"].astype(float).to_dict()
    heavy_p50 = kinds[kinds["app"] == "raw"].set_index("kind")["p50_ms"].astype(float)
    # a light request that arrives while a heavy one computes waits for the whole of it
    assert inline["light"] >= 0.5 * float(heavy_p50.to_dict()["heavy"])
    findings = json.loads((out / "findings.json").read_text())["findings"]
    assert any(f["topic"] == "mixed" for f in findings)
