"""The indexer yields to completions (issue 27: indexing must not cost a completion more than 10%): while the
host's completion flag is set, the scan holds still between files; once it clears, the scan goes on."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pyserver.index.workspace import Progress, WorkspaceIndex
from pyserver.server.index_host import IndexHost


def _workspace(root: Path, n: int) -> None:
    root.mkdir()
    for i in range(n):
        (root / f"mod{i}.py").write_text(f"def function_{i}(x):\n    return x + {i}\n")


def test_the_scan_waits_in_pause_between_files(tmp_path: Path) -> None:
    _workspace(tmp_path / "ws", 5)
    index = WorkspaceIndex(tmp_path / "ws", tmp_path / "i.sqlite")
    calls: list[int] = []
    report = index.scan(Progress(pause=lambda: calls.append(1)))
    assert report.files_indexed == 5 and len(calls) == 5
    index.close()


def test_the_hosts_scan_holds_still_while_a_completion_runs(tmp_path: Path) -> None:
    _workspace(tmp_path / "ws", 40)
    running = threading.Event()
    running.set()  # a completion is being generated
    host = IndexHost(running)
    host.start([tmp_path / "ws"], str(tmp_path / "storage"), (), ())
    try:
        time.sleep(1.0)
        assert host.state == "scanning" and host.last_scan is None  # not one file further
        running.clear()
        deadline = time.monotonic() + 30
        while host.last_scan is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host.last_scan is not None and host.last_scan.files_indexed == 40
    finally:
        host.stop()
