"""Download jobs: progress with speed and ETA, cancel, restart after a cancel, errors reported, one job per model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from pyserver.server.downloads import Downloads


def wait(cond: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_progress_done_and_the_plan_step(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    installed: list[Path] = []

    def fetch(progress: Any, cancelled: Any) -> Path:
        for i in range(1, 11):
            progress(i * 100, 1000)
            time.sleep(0.06)
        return tmp_path / "m.gguf"

    d = Downloads(events.append)
    d.start("m", fetch, installed.append)
    wait(lambda: events and events[-1]["state"] != "running")
    assert events[-1]["state"] == "done" and events[-1]["done"] == 1000
    assert events[-1]["path"] == str(tmp_path / "m.gguf")
    assert installed == [tmp_path / "m.gguf"]
    running = [e for e in events if e["state"] == "running"]
    assert running and all(e["total"] == 1000 for e in running)  # reported along the way (every 0.5 s)
    assert running[-1]["eta_s"] is not None and running[-1]["bytes_per_s"] > 0


def test_cancel_then_start_again(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    gate = threading.Event()
    calls = []

    def fetch(progress: Any, cancelled: Any) -> Path:
        calls.append(1)
        progress(10, 100)
        while not cancelled():
            if gate.is_set():
                return tmp_path / "m.gguf"
            time.sleep(0.01)
        raise RuntimeError("stopped")

    d = Downloads(events.append)
    first = d.start("m", fetch, lambda p: None)
    assert d.start("m", fetch, lambda p: None) is first  # one job per model while it runs
    assert d.cancel("m")
    wait(lambda: events and events[-1]["state"] == "cancelled")
    assert "resumes" in events[-1]["message"]
    assert not d.cancel("m")  # nothing running
    d.start("m", fetch, lambda p: None)
    gate.set()
    wait(lambda: events[-1]["state"] == "done")
    assert len(calls) == 2


def test_errors_are_reported(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []

    def fetch(progress: Any, cancelled: Any) -> Path:
        raise OSError("disk full")

    Downloads(events.append).start("m", fetch, lambda p: None)
    wait(lambda: events and events[-1]["state"] == "error")
    assert events[-1]["message"] == "disk full"
