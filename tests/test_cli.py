"""The command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_kernels_quick_prints_json_report() -> None:
    out = subprocess.run([sys.executable, "-m", "pyserver", "bench", "kernels", "--quick", "--threads", "1"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    report = json.loads(out)
    assert report["machine"]["read_bandwidth_gbs"]["1"] > 0
    fmts = {r["fmt"] for r in report["gemv"]}
    assert fmts == {"TQ2_0", "TQ1_0", "I2_S"}
    for r in report["gemv"]:
        assert r["shape"] == [2560, 2560] and r["median_us"] > 0
        # effective bandwidth is bytes / time: recompute it from the row
        assert abs(r["weight_gbs"] - r["bytes"] / (r["median_us"] * 1e-6) / 1e9) < 0.02 * r["weight_gbs"] + 0.01
    for r in report["gemm"]:
        assert r["batch"] == 128 and r["tmacs"] > 0
    assert set(report["summary"]) == fmts


def test_unknown_command_exits_nonzero() -> None:
    proc = subprocess.run([sys.executable, "-m", "pyserver", "bench", "nothing"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
