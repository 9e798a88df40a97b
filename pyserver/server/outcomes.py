"""How completion requests ended, counted by reason (pyserver/completion/outcome.py) and kept in the sidecar's
storage folder beside the acceptance statistics, so that `doctor` can show them; local only, like those."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from pyserver.completion.outcome import Outcome
from pyserver.paths import write_text_atomic

log = logging.getLogger("ryzanstein")

FILE_NAME = "completion_outcomes.json"
SAVE_EVERY_S = 30.0


class CompletionOutcomes:
    def __init__(self, folder: Path | None) -> None:
        self.path = folder / FILE_NAME if folder is not None else None
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.last: dict[str, Any] | None = None
        self._dirty = False
        self._saved_at = time.monotonic()
        data = read(folder)
        self.counts, self.last = data["by_reason"], data["last"]

    def count(self, outcome: Outcome) -> None:
        with self._lock:
            self.counts[outcome.reason] = self.counts.get(outcome.reason, 0) + 1
            self.last = outcome.to_json() | {"time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self._dirty = True
            due = time.monotonic() - self._saved_at > SAVE_EVERY_S
        if due:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            text = json.dumps({"by_reason": self.counts, "last": self.last, "note": "local only"}, indent=1)
            self._dirty, self._saved_at = False, time.monotonic()
        try:
            write_text_atomic(self.path, text)
        except OSError as exc:
            log.warning("could not save the completion outcomes to %s: %s", self.path, exc)


def read(folder: Path | None) -> dict[str, Any]:
    """{"by_reason": {reason: count}, "last": the last outcome or None}, from the storage folder."""
    empty: dict[str, Any] = {"by_reason": {}, "last": None}
    if folder is None:
        return empty
    try:
        data = json.loads((folder / FILE_NAME).read_text())
    except FileNotFoundError:
        return empty
    except (OSError, ValueError) as exc:
        log.warning("completion outcomes in %s unreadable (%s): starting afresh", folder, exc)
        return empty
    counts = data.get("by_reason") if isinstance(data, dict) else None
    if not isinstance(counts, dict):
        return empty
    last = data.get("last")
    return {
        "by_reason": {str(k): v for k, v in counts.items() if isinstance(v, int) and v >= 0},
        "last": last if isinstance(last, dict) else None,
    }
