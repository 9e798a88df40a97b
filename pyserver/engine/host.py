"""Owns the loaded model: loads it in the background, hands out sessions, and keeps completions first.

Completions and refactors have their own sessions (their own KV caches) but share the model: a refactor takes the
model one token at a time and steps aside while a completion is waiting, so a long command never delays a
suggestion by more than one token.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import psutil

from pyserver import native
from pyserver.engine import Model, ModelLoadError, Session
from pyserver.models import default_model_path

STATES = ("idle", "loading", "ready", "busy", "error")


class _YieldingSession(Session):
    """A refactor session: each evaluation waits for pending completions and holds the model only meanwhile."""

    def __init__(self, model: Model, n_ctx: int, host: ModelHost) -> None:
        super().__init__(model, n_ctx)
        self._host = host

    def append(self, tokens: Sequence[int], n_logits: int = 1) -> np.ndarray | None:
        while self._host.completion_waiting.is_set():
            time.sleep(0.002)
        with self._host.lock:
            return super().append(tokens, n_logits)


class ModelHost:
    def __init__(self, on_state: Callable[[ModelHost], None] | None = None) -> None:
        self.model: Model | None = None
        self.model_path: Path | None = None
        self.state = "idle"
        self.error: str | None = None
        self.lock = threading.Lock()
        self.completion_waiting = threading.Event()
        self.completion_running = threading.Event()  # background work (embeddings) waits while set
        self.last_latency_ms: float | None = None
        self.last_tokens_per_s: float | None = None
        self._on_state = on_state or (lambda _h: None)
        self._completion_session: Session | None = None
        self._draft_session: Session | None = None
        self.last_used = time.monotonic()
        self._refactor_session: Session | None = None

    def _set(self, state: str, error: str | None = None) -> None:
        self.state, self.error = state, error
        self._on_state(self)

    def load(self, path: str = "", threads: int = 0) -> None:
        """Loads synchronously (call from a worker thread). Errors end in state "error" with a message."""
        self._set("loading")
        try:
            p = Path(path) if path else default_model_path()
            if p is None:
                raise ModelLoadError("models/", "no model configured and no shipped model found")
            if threads:
                native.set_num_threads(threads)
            model = Model.load(p)
            if model.tokenizer is None:
                raise ModelLoadError(p, "the model has no tokenizer")
            self.adopt(model, p)
        except (ModelLoadError, OSError, ValueError) as exc:
            self._set("error", str(exc))

    def adopt(self, model: Model, path: Path) -> None:
        """Serves an already loaded model (the pool's larger tier)."""
        with self.lock:
            self.model, self.model_path = model, path
            n_ctx = min(model.config.context_length, 2048)
            self._completion_session = model.session(n_ctx)
            self._refactor_session = _YieldingSession(model, n_ctx, self)
            self.last_used = time.monotonic()
        self._set("ready")

    def unload(self) -> bool:
        """Drops the model (idle too long); the next request loads it again. False when it is in use."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            if self.model is None:
                return False
            self.model = None
            self._completion_session = self._refactor_session = None
        finally:
            self.lock.release()
        self._set("idle")
        return True

    def load_in_background(self, path: str = "", threads: int = 0) -> threading.Thread:
        t = threading.Thread(target=self.load, args=(path, threads), name="model-load", daemon=True)
        t.start()
        return t

    @property
    def ready(self) -> bool:
        return self.model is not None and self.state in ("ready", "busy")

    @contextlib.contextmanager
    def completion_turn(self) -> Iterator[Session]:
        """The completion session, with the model held for the whole generation."""
        self.completion_waiting.set()
        self.completion_running.set()
        try:
            with self.lock:
                self.completion_waiting.clear()
                self.last_used = time.monotonic()
                assert self._completion_session is not None
                yield self._completion_session
        finally:
            self.completion_waiting.clear()
            self.completion_running.clear()

    def draft_session(self) -> Session | None:
        """A session of this model for drafting another model's tokens (it yields to completions like the
        refactor session); None when no model is loaded."""
        with self.lock:
            if self.model is None:
                return None
            if self._draft_session is None or self._draft_session.model is not self.model:
                self._draft_session = _YieldingSession(self.model, min(self.model.config.context_length, 2048), self)
            return self._draft_session

    def refactor_session(self) -> Session:
        self.last_used = time.monotonic()
        assert self._refactor_session is not None
        return self._refactor_session

    def status(self) -> dict[str, object]:
        m = self.model
        return {
            "state": self.state,
            "model": self.model_path.name if self.model_path else None,
            "tier": "shipped" if self.model_path is not None and self.model_path == default_model_path() else "custom",
            "arch": m.config.arch if m else None,
            "params": m.config.n_params if m else None,
            "last_latency_ms": None if self.last_latency_ms is None else round(self.last_latency_ms, 1),
            "tokens_per_s": None if self.last_tokens_per_s is None else round(self.last_tokens_per_s, 1),
            "error": self.error,
            "rss_bytes": psutil.Process().memory_info().rss,
        }
