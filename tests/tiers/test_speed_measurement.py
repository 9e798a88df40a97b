"""The machine's speed is measured honestly: repeated (rounds of short runs), with the load of other processes and
the sidecar's own work checked before and during, kept as a distribution (median, p10-p90, spread), measured again
when the last figure looks disturbed or is older than a week; a tier too slow says by how much and names the
closest one that fits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pyserver import native
from pyserver.tiers import hardware
from pyserver.tiers.hardware import (
    GIB,
    MAX_SPREAD,
    QUIET_LOAD,
    HardwareProfile,
    distribution,
    measurement_summary,
    needs_measuring,
    profile,
)
from pyserver.tiers.registry import Registry
from pyserver.tiers.selection import COMPLETION_LATENCY_MS, choose


class Machine:
    """Fake measurements: the runs' speeds and the other processes' load, as the test sets them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs = [80.0] * 21
        self.loads = [0.02] * 21
        self.load_now = 0.02
        self.calls: list[dict[str, Any]] = []
        monkeypatch.setattr(hardware, "engine_version", lambda: "0.1.0+aaa")
        monkeypatch.setattr(hardware, "cpu_model", lambda: "Fake CPU")
        monkeypatch.setattr(hardware, "measure_bandwidth", lambda threads: 20.0)
        monkeypatch.setattr(hardware, "measure_prefill", lambda threads: 300.0)
        monkeypatch.setattr(hardware, "measure_decode", self.decode)
        monkeypatch.setattr(hardware, "other_load", lambda interval=0.5: self.load_now)
        monkeypatch.setattr(native, "measure_read_bandwidth", lambda size, threads, reps: 18.0)

    def decode(self, threads: int, **kw: Any) -> tuple[float, int, list[float]]:
        self.calls.append(kw)
        if kw.get("loads") is not None:
            kw["loads"].extend(self.loads)
        runs = sorted(self.runs)
        return runs[len(runs) // 2], 125_000_000, list(self.runs)


@pytest.fixture()
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    return Machine(monkeypatch)


def test_the_distribution() -> None:
    d = distribution([10.0, 20.0, 30.0, 40.0, 50.0], [0.0, 0.0, 0.9, 0.0, 0.0], load_before=0.0)
    assert (d["n"], d["median"], d["p10"], d["p90"]) == (5, 30.0, 14.0, 46.0)
    assert d["spread"] == pytest.approx((46.0 - 14.0) / 30.0, abs=1e-3) and d["disturbed"]  # far over MAX_SPREAD
    quiet = distribution([79.0, 80.0, 81.0, 80.0], [0.01] * 4, load_before=0.01)
    assert not quiet["disturbed"] and quiet["spread"] < MAX_SPREAD
    busy = distribution([79.0, 80.0, 81.0, 80.0], [QUIET_LOAD + 0.3] * 4, load_before=0.0)
    assert busy["disturbed"] and "load" in busy["why"]


def test_measured_in_rounds_with_the_load_and_the_sidecars_work_checked(machine: Machine, tmp_path: Path) -> None:
    own_work = [True, False]
    hw = profile(tmp_path, busy=lambda: own_work.pop(0) if own_work else False)
    (call,) = machine.calls
    assert call["rounds"] >= 3 and callable(call["busy"])  # repeated, and the sidecar's own work checked during
    saved = json.loads((tmp_path / "hardware.json").read_text())
    m = saved["measurement"]
    assert m["n"] == 21 and m["median"] == 80.0 and not m["disturbed"]
    assert hw.efficiency == 0.5 and not hw.stale
    assert not needs_measuring(tmp_path)


def test_a_disturbed_figure_is_measured_again(machine: Machine, tmp_path: Path) -> None:
    machine.runs = [18.0, 35.0, 22.0, 30.0, 19.0, 34.0, 25.0] * 3  # the runs: 18 to 35 tokens/s
    profile(tmp_path)
    assert json.loads((tmp_path / "hardware.json").read_text())["measurement"]["disturbed"]
    hw = profile(tmp_path, measure=False)
    assert hw.stale and hw.measured  # used for now, and marked for a new measurement
    assert needs_measuring(tmp_path)
    machine.runs = [80.0] * 21
    profile(tmp_path)  # measured again (the cache is not taken as it is)
    assert len(machine.calls) == 2 and not needs_measuring(tmp_path)
    # the history keeps both
    assert [h["disturbed"] for h in json.loads((tmp_path / "hardware.json").read_text())["history"]] == [True, False]


def test_a_figure_older_than_a_week_is_measured_again(machine: Machine, tmp_path: Path) -> None:
    profile(tmp_path)
    data = json.loads((tmp_path / "hardware.json").read_text())
    data["time"] = time.time() - 8 * 24 * 3600
    (tmp_path / "hardware.json").write_text(json.dumps(data))
    assert needs_measuring(tmp_path) and profile(tmp_path, measure=False).stale
    profile(tmp_path)
    assert len(machine.calls) == 2


def test_a_busy_machine_is_not_measured_when_asked_to_wait(machine: Machine, tmp_path: Path) -> None:
    machine.load_now = QUIET_LOAD + 0.5
    assert hardware.quiet_enough() is False
    machine.load_now = 0.01
    assert hardware.quiet_enough() is True


def test_the_summary_for_the_doctor_has_the_spread(machine: Machine, tmp_path: Path) -> None:
    profile(tmp_path)
    s = measurement_summary(tmp_path)
    assert s is not None and "80.0 tokens/s" in s["text"] and "p10" in s["text"] and "spread" in s["text"]


def test_a_tier_too_slow_says_by_how_much_and_the_closest_that_fits() -> None:
    registry = Registry.load()
    hw = HardwareProfile(16 * GIB, 12 * GIB, 2, 2, ("avx2",), 4.0, efficiency=0.48, prefill_gmacs=100.0)
    d = choose(registry, hw)
    line = next(r for r in d.reasons if r.startswith("3B bitnet-b1.58-2b4t"))
    slow = next(c for c in d.candidates if c.spec.id == "bitnet-b1.58-2b4t")
    times = slow.latency_ms / COMPLETION_LATENCY_MS
    assert f"{times:.1f}x the {COMPLETION_LATENCY_MS:.0f} ms budget" in line
    assert "closest that fits: ryzanstein-code" in line
    row = slow.to_json()
    assert row["over_budget"] == pytest.approx(times, abs=0.01) and row["closest_fit"] == "ryzanstein-code"
