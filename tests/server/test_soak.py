"""`python -m pyserver bench soak`, briefly: the real server typed into over stdio, and its report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyserver.bench.soak import slope_per_minute
from tests.server.test_lsp import model_path


def test_soak_reports_memory_threads_latency_and_answers() -> None:
    command = [sys.executable, "-m", "pyserver", "bench", "soak", "--minutes", "0.1", "--rate", "20"]
    proc = subprocess.run([*command, "--model", str(model_path())], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["requests"] >= 100 and report["answered"] == report["requests"]
    # Generation really runs: suggestions come back (the confidence gate is off), not only superseded requests.
    assert report["suggestions"] > 0 and report["suggested_chars"] >= report["suggestions"]
    assert report["unanswered"] == 0 and report["crashes"] == 0 and report["exit_code"] == 0
    assert report["error_answers"] == {}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] <= report["latency_ms"]["max"]
    assert report["rss_mb"]["max"] > 50 and report["threads"]["max"] > 1 and report["open_fds"]["max"] > 2
    assert set(report["targets"]) == {
        "rss_slope_below_0.5_mb_per_min",
        "no_unanswered",
        "no_crash",
        "suggestions_produced",
    }


def test_soak_by_default_types_every_300_ms_and_produces_suggestions() -> None:
    """The soak's own pace (a keystroke every 300 ms: the model has time to answer each)."""
    command = [sys.executable, "-m", "pyserver", "bench", "soak", "--minutes", "0.1", "--model", str(model_path())]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["rate_per_s"] == pytest.approx(1 / 0.3, rel=1e-3)
    assert 15 <= report["requests"] <= 25
    assert report["suggestions"] >= report["requests"] // 2, report


def test_slope_is_least_squares_per_minute() -> None:
    assert slope_per_minute([0.0, 60.0, 120.0], [100.0, 101.0, 102.0]) == pytest.approx(1.0)
    assert abs(slope_per_minute([0, 30, 60, 90], [5.0, 5.5, 5.5, 5.0])) < 1e-9
    assert slope_per_minute([10.0], [1.0]) == 0.0
