"""The sidecar's workspace indexes: one per workspace folder, built and kept live in the background.

The lexical scan runs first (with work-done progress the user can cancel), then the watcher starts and the
embeddings are computed at low priority, one batch at a time; both hold still while a completion is being
generated (between files, and twice per layer of the embedding model: the machine may have two cores). Any
failure leaves the sidecar serving, without the index.

A settings change replaces the host (RyzansteinServer.restart_index): `stop` cancels the scan or the embedding
between two steps, then closes everything the host opened (watchers, every thread's connections) and drops its
references, so nothing lingers until a garbage collection; the embedding model is the process's one shared
instance (MiniLM.shared), never loaded again."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from pyserver.index.search import Hit
from pyserver.index.store import IndexUnavailable
from pyserver.index.watcher import IndexWatcher
from pyserver.index.workspace import Progress, ScanReport, WorkspaceIndex, default_index_path

log = logging.getLogger("ryzanstein.index")

BACKGROUND_NICE = 10
STOP_TIMEOUT_S = 10.0


class IndexHost:
    def __init__(self, completion_running: threading.Event, on_error: Callable[[str], None] = lambda msg: None) -> None:
        self.completion_running = completion_running
        self.on_error = on_error
        self.indexes: list[WorkspaceIndex] = []
        self.watchers: list[IndexWatcher] = []
        self.state = "off"  # off | scanning | embedding | ready | error
        self.last_scan: ScanReport | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # new work for the embedding loop
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # indexes and watchers, between the indexing thread and stop()

    def start(
        self,
        roots: list[Path],
        storage: str,
        include: tuple[str, ...],
        exclude: tuple[str, ...],
        progress: Progress | None = None,
    ) -> threading.Thread:
        self._thread = threading.Thread(
            target=self._run, args=(roots, storage, include, exclude, progress), name="ryzanstein-index", daemon=True
        )
        self._thread.start()
        return self._thread

    def _run(
        self,
        roots: list[Path],
        storage: str,
        include: tuple[str, ...],
        exclude: tuple[str, ...],
        progress: Progress | None,
    ) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except (AttributeError, OSError):
            pass  # not Linux, or not allowed: the pauses below still keep completions first
        outer = progress or Progress()
        scan_progress = Progress(
            report=outer.report, cancelled=lambda: self._stop.is_set() or outer.cancelled(), pause=self._pause
        )
        try:
            self.state = "scanning"
            for root in roots:
                db = default_index_path(root, Path(storage) if storage else None)
                index = WorkspaceIndex(root, db, include, exclude)
                if not self._keep(index):
                    return
                self.last_scan = index.scan(scan_progress)
                log.info("index %s: %s", root, self.last_scan)
                if self._stop.is_set() or self.last_scan.cancelled:
                    break
            if self._stop.is_set():
                return
            outer.report(1, 1, "done")
            for index in list(self.indexes):
                if not self._keep(IndexWatcher(index, on_update=self._on_update).start()):
                    return
            self._embed_loop()
        except IndexUnavailable as exc:
            self.state = "error"
            self.on_error(f"Ryzanstein: the workspace index is unavailable: {exc}")
        except Exception as exc:  # noqa: BLE001 - the sidecar serves on without an index
            self.state = "error"
            log.exception("indexing failed")
            self.on_error(f"Ryzanstein: indexing failed: {exc}")
        finally:
            if self._stop.is_set():
                self._release()  # (stop() may have given up waiting for this thread)

    def _keep(self, item: WorkspaceIndex | IndexWatcher) -> bool:
        """Adds an index or a started watcher to what stop() releases; False (and closes it) once stopping."""
        with self._lock:
            if not self._stop.is_set():
                if isinstance(item, WorkspaceIndex):
                    self.indexes.append(item)
                else:
                    self.watchers.append(item)
                return True
        if isinstance(item, WorkspaceIndex):
            item.close()
        else:
            item.stop()
        return False

    def _on_update(self, _report: ScanReport) -> None:
        self._wake.set()

    def _pause(self) -> None:
        while self.completion_running.is_set() and not self._stop.is_set():
            self._stop.wait(0.005)

    def _embed_loop(self) -> None:
        while not self._stop.is_set():
            self.state = "embedding"
            done = 0
            for index in self.indexes:
                done += index.embed_pending(limit=64, pause=self._pause, cancelled=self._stop.is_set)
            if done == 0:
                self.state = "ready"
                self._wake.wait(5.0)
                self._wake.clear()

    def stop(self) -> None:
        """Stops indexing and releases every watcher, connection and reference the host holds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=STOP_TIMEOUT_S)
            if self._thread.is_alive():  # mid-way through one file or one batch: it releases when it ends
                log.warning(
                    "index thread still busy after %g s: it will release the index when it stops", STOP_TIMEOUT_S
                )
                return
        self._release()

    def _release(self) -> None:
        with self._lock:
            watchers, self.watchers = self.watchers, []
            indexes, self.indexes = self.indexes, []
        for w in watchers:
            w.stop()
        for index in indexes:
            index.close()
        self.state = "off"

    def index_for(self, path: str) -> WorkspaceIndex | None:
        for index in self.indexes:
            if index.rules.relative(path) is not None:
                return index
        return None

    def completion_context(self, path: str | None, prefix: str, budget_chars: int) -> list[Hit]:
        """Chunks for the prompt's extra-context slot ([] while the index is not there yet)."""
        if path is None or self.state in ("off", "error"):
            return []
        index = self.index_for(path)
        if index is None:
            return []
        try:
            return index.completion_context(prefix, budget_chars, path)
        except Exception:  # noqa: BLE001 - a locked or damaged index must not cost the completion
            log.exception("index query failed")
            return []

    def reindex(self, progress: Progress | None = None) -> list[ScanReport]:
        reports = [index.scan(progress) for index in list(self.indexes)]
        self._wake.set()
        return reports

    def status(self) -> dict[str, object]:
        indexes = list(self.indexes)
        counts = [index.reader().counts() for index in indexes]
        return {
            "state": self.state,
            "folders": [str(i.root) for i in indexes],
            "files": sum(c["files"] for c in counts),
            "chunks": sum(c["chunks"] for c in counts),
            "embedded": sum(c["vectors"] for c in counts),
        }
