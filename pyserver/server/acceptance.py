"""Acceptance statistics, kept on this machine only: per model and language, how many suggestions were shown and
how many the user accepted whole, by word or by line. Stored as JSON in the sidecar's storage folder; nothing of it
leaves the machine.

"Shown" counts the suggestions the model made and the sidecar answered with, once each (not again as the user types
into one and the rest is forwarded from the cache; the editor may still drop one the user typed past);
accepts come from the extension: the item's command (Tab) and its accept-word / accept-line keybindings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pyserver.paths import cache_dir, write_text_atomic

log = logging.getLogger("ryzanstein")

EVENTS = ("shown", "accepted", "accepted_word", "accepted_line")
FILE_NAME = "acceptance.json"
SAVE_EVERY_S = 30.0


@dataclass
class _Last:
    model: str
    language: str


class AcceptanceStats:
    def __init__(self, folder: Path | None) -> None:
        self.path = folder / FILE_NAME if folder is not None else None
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, dict[str, int]]] = {}  # model -> language -> event -> count
        self._last: dict[str, _Last] = {}  # uri -> what was last shown there
        self._dirty = False
        self._saved_at = time.monotonic()
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text())
                if isinstance(data, dict) and isinstance(data.get("counts"), dict):
                    self._counts = _clean(data["counts"])
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:  # a damaged file starts the counts afresh; it is only statistics
                log.warning("acceptance statistics in %s unreadable (%s): starting afresh", self.path, exc)

    def shown(self, uri: str, model: str, language: str) -> None:
        with self._lock:
            self._last[uri] = _Last(model, language or "unknown")
            if len(self._last) > 256:
                self._last.pop(next(iter(self._last)))
        self._count(model, language or "unknown", "shown")

    def accepted(self, uri: str, event: str) -> bool:
        """An accept of the suggestion last shown in `uri`; False when none was shown there or the event is
        unknown."""
        if event not in EVENTS[1:]:
            return False
        with self._lock:
            last = self._last.get(uri)
        if last is None:
            return False
        self._count(last.model, last.language, event)
        self.save()  # accepts are rare and the user's own doing: keep each one
        return True

    def _count(self, model: str, language: str, event: str) -> None:
        with self._lock:
            per = self._counts.setdefault(model, {}).setdefault(language, {e: 0 for e in EVENTS})
            per[event] = per.get(event, 0) + 1
            self._dirty = True
            due = time.monotonic() - self._saved_at > SAVE_EVERY_S
        if due:
            self.save()

    def summary(self) -> dict[str, object]:
        """Totals and the acceptance rate (whole accepts per shown suggestion; partial accepts apart), overall and
        per model and language."""
        with self._lock:
            rows = [(m, lang, dict(c)) for m, langs in self._counts.items() for lang, c in langs.items()]
        total = {e: sum(c.get(e, 0) for _, _, c in rows) for e in EVENTS}
        return {
            **total,
            "acceptance_rate": _rate(total),
            "partial_rate": _partial(total),
            "by_model_language": [
                {"model": m, "language": lang, **c, "acceptance_rate": _rate(c)} for m, lang, c in rows
            ],
        }

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            data = json.dumps({"counts": self._counts, "note": "local only; never sent anywhere"}, indent=1)
            self._dirty = False
            self._saved_at = time.monotonic()
        try:
            write_text_atomic(self.path, data)
        except OSError as exc:
            log.warning("could not save acceptance statistics to %s: %s", self.path, exc)


def _rate(c: dict[str, int]) -> float | None:
    return round(c.get("accepted", 0) / c["shown"], 3) if c.get("shown") else None


def _partial(c: dict[str, int]) -> float | None:
    return round((c.get("accepted_word", 0) + c.get("accepted_line", 0)) / c["shown"], 3) if c.get("shown") else None


def _clean(raw: dict[str, object]) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for model, langs in raw.items():
        if not isinstance(langs, dict):
            continue
        for lang, counts in langs.items():
            if isinstance(counts, dict):
                out.setdefault(str(model), {})[str(lang)] = {
                    e: int(counts[e]) if isinstance(counts.get(e), int) and counts[e] >= 0 else 0 for e in EVENTS
                }
    return out


def storage_folder(storage_path: str) -> Path:
    return Path(storage_path) if storage_path else cache_dir()
