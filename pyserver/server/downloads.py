"""Model downloads the user asked for in the editor: one job per model on a worker thread, progress reported as
(bytes done, bytes total, bytes per second), cancellable; a cancelled or failed job can be started again and
resumes where the download stopped (pyserver/tiers/download.py keeps the partial files)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("ryzanstein")

# (bytes done, bytes total) -> None, and a cancel check; returns where the model is.
Fetch = Callable[[Callable[[int, int], None], Callable[[], bool]], Path]
REPORT_EVERY_S = 0.5


@dataclass
class Job:
    model_id: str
    state: str = "running"  # running | done | cancelled | error
    done: int = 0
    total: int = 0
    bytes_per_s: float = 0.0
    message: str = ""
    path: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        eta = (self.total - self.done) / self.bytes_per_s if self.bytes_per_s > 0 and self.total else None
        return {
            "id": self.model_id,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "bytes_per_s": round(self.bytes_per_s),
            "eta_s": None if eta is None else round(eta),
            "message": self.message,
            "path": self.path,
        }


class Downloads:
    def __init__(self, notify: Callable[[dict[str, Any]], None]) -> None:
        self._notify = notify
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, model_id: str, fetch: Fetch, on_done: Callable[[Path], None]) -> Job:
        """Starts (or joins, when one is running) the download of model_id."""
        with self._lock:
            job = self._jobs.get(model_id)
            if job is not None and job.state == "running":
                return job
            job = self._jobs[model_id] = Job(model_id)
        threading.Thread(target=self._run, args=(job, fetch, on_done), name=f"download-{model_id}", daemon=True).start()
        return job

    def cancel(self, model_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(model_id)
        if job is None or job.state != "running":
            return False
        job.cancel.set()
        return True

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [j.to_json() for j in self._jobs.values()]

    def _run(self, job: Job, fetch: Fetch, on_done: Callable[[Path], None]) -> None:
        started, first, last = time.monotonic(), -1, 0.0

        def progress(done: int, total: int) -> None:
            nonlocal first, last
            now = time.monotonic()
            if first < 0:
                first = done  # a resumed download starts part-way: its speed counts from there
            job.done, job.total = done, total
            job.bytes_per_s = (done - first) / max(1e-3, now - started)
            if now - last >= REPORT_EVERY_S:
                last = now
                self._notify(job.to_json())

        try:
            path = fetch(progress, job.cancel.is_set)
            job.path = str(path)
            on_done(path)
            job.state, job.message = "done", f"installed at {path}"
        except Exception as exc:  # noqa: BLE001 - the user sees why; the sidecar keeps serving
            cancelled = job.cancel.is_set() or type(exc).__name__ == "DownloadCancelled"
            job.state = "cancelled" if cancelled else "error"
            job.message = "cancelled: starting it again resumes it" if cancelled else str(exc)
            if not cancelled:
                log.warning("download of %s failed: %s", job.model_id, exc)
        self._notify(job.to_json())
