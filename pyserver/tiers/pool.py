"""The models held in memory: never more than the RAM budget allows (the least recently used idle model makes
room), a model idle longer than the configured time is unloaded, and the next request loads it again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class MemoryBudgetError(RuntimeError):
    pass


@dataclass
class _Entry:
    model: Any
    bytes: int
    last_used: float
    busy: int = 0


def resident_bytes(model: Any) -> int:
    """What a loaded engine Model holds: weights, the head's rows and the embedding table."""
    s = model.stats
    return int(s.weight_bytes + s.head_bytes + s.embedding_bytes)


class ModelPool:
    def __init__(
        self,
        budget_bytes: int,
        idle_unload_s: float,
        loader: Callable[[Path], Any],
        size_of: Callable[[Any], int] = resident_bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_bytes = budget_bytes
        self.idle_unload_s = idle_unload_s
        self._loader, self._size_of, self._clock = loader, size_of, clock
        self._models: dict[Path, _Entry] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was (re)loaded

    @property
    def used_bytes(self) -> int:
        return sum(e.bytes for e in self._models.values())

    def loaded(self) -> list[Path]:
        return list(self._models)

    def is_idle(self, path: Path) -> bool:
        e = self._models.get(Path(path))
        return e is not None and e.busy == 0

    @contextlib.contextmanager
    def use(self, path: Path, expected_bytes: int | None = None) -> Iterator[Any]:
        """The model at path, loaded if needed; it cannot be unloaded while in use."""
        path = Path(path)
        with self._lock:
            e = self._models.get(path)
            if e is None:
                if expected_bytes is not None:
                    self._make_room(expected_bytes, path)
                model = self._loader(path)
                size = self._size_of(model)
                self._make_room(size, path)
                e = self._models[path] = _Entry(model, size, self._clock())
                self.loads += 1
            e.busy += 1
            e.last_used = self._clock()
        try:
            yield e.model
        finally:
            with self._lock:
                e.busy -= 1
                e.last_used = self._clock()

    def _make_room(self, need: int, for_path: Path) -> None:
        if need > self.budget_bytes:
            raise MemoryBudgetError(
                f"{for_path.name} needs {need / 2**30:.1f} GiB, more than the memory budget of "
                f"{self.budget_bytes / 2**30:.1f} GiB"
            )
        while self.used_bytes + need > self.budget_bytes:
            idle = [(e.last_used, p) for p, e in self._models.items() if e.busy == 0]
            if not idle:
                raise MemoryBudgetError(f"no room for {for_path.name}: the loaded models are all in use")
            del self._models[min(idle)[1]]

    def unload_idle(self) -> list[Path]:
        """Unloads the models idle longer than idle_unload_s; returns them."""
        now = self._clock()
        with self._lock:
            gone = [p for p, e in self._models.items() if e.busy == 0 and now - e.last_used > self.idle_unload_s]
            for p in gone:
                del self._models[p]
        return gone
