"""Keeps an index live: watchdog events (editors save through temporary files and renames, so every event's source
and destination count) feed a debounced set of paths, flushed to `WorkspaceIndex.update_paths` once the folder has
been quiet for DEBOUNCE_S."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from pyserver.index.files import SKIPPED_DIRS
from pyserver.index.workspace import ScanReport, WorkspaceIndex

log = logging.getLogger("ryzanstein.index")

DEBOUNCE_S = 0.25


class _Collector(FileSystemEventHandler):
    def __init__(self, on_paths: Callable[[set[str]], None]) -> None:
        self.on_paths = on_paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        raw = {p for p in (event.src_path, getattr(event, "dest_path", "")) if p}
        paths = {p.decode(errors="surrogateescape") if isinstance(p, bytes) else str(p) for p in raw}
        # Changes inside .git, node_modules and the like never matter (and come in storms).
        paths = {p for p in paths if not any(part in SKIPPED_DIRS for part in p.split("/"))}
        if paths:
            self.on_paths(paths)


class IndexWatcher:
    def __init__(
        self,
        index: WorkspaceIndex,
        on_update: Callable[[ScanReport], None] = lambda r: None,
        debounce_s: float = DEBOUNCE_S,
    ) -> None:
        self.index = index
        self.on_update = on_update
        self.debounce_s = debounce_s
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer = Observer()
        self._observer.schedule(_Collector(self._add), str(index.root), recursive=True)
        self._thread = threading.Thread(target=self._run, name="ryzanstein-index-watch", daemon=True)

    def _add(self, paths: set[str]) -> None:
        with self._lock:
            self._pending |= paths
        self._wake.set()

    def start(self) -> IndexWatcher:
        self._observer.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._observer.stop()
        self._observer.join(timeout=5)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            # Debounce: wait until no event came for debounce_s.
            while not self._stop.is_set():
                self._wake.clear()
                if not self._wake.wait(self.debounce_s):
                    break
            with self._lock:
                paths, self._pending = self._pending, set()
            if not paths or self._stop.is_set():
                continue
            try:
                rep = self.index.update_paths(sorted(paths))
            except Exception:  # noqa: BLE001 - a bad file must not stop the watcher
                log.exception("index update failed for %d paths", len(paths))
                continue
            if rep.files_indexed or rep.files_removed:
                self.on_update(rep)
