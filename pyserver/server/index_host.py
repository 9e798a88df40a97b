"""The sidecar's workspace indexes: one per workspace folder, built and kept live in the background.

The lexical scan runs first (with work-done progress the user can cancel), then the watcher starts and the
embeddings are computed at low priority, one batch at a time, holding still while a completion is being generated
(the machine may have two cores). Any failure leaves the sidecar serving, without the index."""

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
        try:
            self.state = "scanning"
            for root in roots:
                db = default_index_path(root, Path(storage) if storage else None)
                index = WorkspaceIndex(root, db, include, exclude)
                self.indexes.append(index)
                self.last_scan = index.scan(progress)
                log.info("index %s: %s", root, self.last_scan)
                if self._stop.is_set() or self.last_scan.cancelled:
                    break
            if progress is not None:
                progress.report(1, 1, "done")
            for index in self.indexes:
                self.watchers.append(IndexWatcher(index, on_update=lambda _r: self._wake.set()).start())
            self._embed_loop()
        except IndexUnavailable as exc:
            self.state = "error"
            self.on_error(f"Ryzanstein: the workspace index is unavailable: {exc}")
        except Exception as exc:  # noqa: BLE001 - the sidecar serves on without an index
            self.state = "error"
            log.exception("indexing failed")
            self.on_error(f"Ryzanstein: indexing failed: {exc}")

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
        self._stop.set()
        self._wake.set()
        for w in self.watchers:
            w.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for index in self.indexes:
            index.close()

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
        reports = [index.scan(progress) for index in self.indexes]
        self._wake.set()
        return reports

    def status(self) -> dict[str, object]:
        counts = [index.reader().counts() for index in self.indexes] if self.indexes else []
        return {
            "state": self.state,
            "folders": [str(i.root) for i in self.indexes],
            "files": sum(c["files"] for c in counts),
            "chunks": sum(c["chunks"] for c in counts),
            "embedded": sum(c["vectors"] for c in counts),
        }
