"""Owns the loaded model: loads it in the background, hands out sessions, and keeps completions first.

Completions and refactors have their own sessions (their own KV caches) but share the model: a refactor takes the
model one token at a time and steps aside while a completion is waiting, so a long command never delays a
suggestion by more than one token.

Each recently used document keeps its own completion session (`DocumentSessions`, LRU within a memory budget), so
returning to a file finds its prompt cached; `warm` fills a document's cache in the background, in chunks that a
completion cancels at once (the forward pass checks between layers). The host measures the model's prefill and
decode speeds when it loads, and keeps them up to date from the completions it runs (`Speeds`): the completion
pipeline sizes a cold prompt from them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from pyserver import native
from pyserver.engine import Model, ModelLoadError, Session
from pyserver.models import default_model_path

STATES = ("idle", "loading", "ready", "busy", "error")
# Completion KV caches: at most this many documents, within this share of the RAM available at load (and at most
# KV_BUDGET_MAX bytes); always at least one.
MAX_DOCUMENTS = 8
KV_BUDGET_SHARE, KV_BUDGET_MAX = 0.1, 1 << 30
WARM_CHUNK = 64  # tokens per warm-up step (a completion cancels a running step at its next layer)
SPEED_PROBE_TOKENS = 32  # the prefill timed when a model loads


@dataclass
class Speeds:
    """The loaded model's speeds on this machine (tokens/s): measured at load, then a moving average of what
    completions and warm-ups achieve."""

    prefill_tps: float = 0.0
    decode_tps: float = 0.0

    def note(self, kind: str, tokens: int, seconds: float) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        rate = tokens / seconds
        old = getattr(self, kind)
        setattr(self, kind, rate if old == 0.0 else 0.8 * old + 0.2 * rate)


QUICK_CTX = 512  # a document's quick cache: cut prompts (a slow model, a cold cache) and their generation


class DocumentCaches:
    """One document's completion sessions: `full` for whole prompts, and, made on first use, `quick` for the cut
    prompts that a slow model answers while `full` is still cold."""

    def __init__(self, model: Model, n_ctx: int) -> None:
        self._model = model
        self.full = model.session(n_ctx)
        self._quick: Session | None = None

    def quick(self) -> Session:
        if self._quick is None:
            self._quick = self._model.session(min(QUICK_CTX, self.full.n_ctx))
        return self._quick

    def clear(self) -> None:
        self.full.truncate(0)
        if self._quick is not None:
            self._quick.truncate(0)


class DocumentSessions:
    """Completion caches of the most recently used documents: LRU within a memory budget, so returning to a
    document finds its prompt still in the KV cache. An evicted document's caches are reused for the new one."""

    def __init__(self, model: Model, n_ctx: int, budget_bytes: int) -> None:
        self.model, self.n_ctx = model, n_ctx
        per = max(1, model.config.kv_bytes(n_ctx) + model.config.kv_bytes(min(QUICK_CTX, n_ctx)))
        self.capacity = max(1, min(MAX_DOCUMENTS, budget_bytes // per))
        self._docs: OrderedDict[str, DocumentCaches] = OrderedDict()

    def get(self, uri: str) -> DocumentCaches:
        d = self._docs.get(uri)
        if d is None:
            if len(self._docs) >= self.capacity:
                _, d = self._docs.popitem(last=False)
                d.clear()
            else:
                d = DocumentCaches(self.model, self.n_ctx)
            self._docs[uri] = d
        self._docs.move_to_end(uri)
        return d

    def __len__(self) -> int:
        return len(self._docs)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class _YieldingSession(Session):
    """A refactor session: each evaluation waits for pending completions and holds the model only meanwhile."""

    def __init__(self, model: Model, n_ctx: int, host: ModelHost) -> None:
        super().__init__(model, n_ctx)
        self._host = host

    def append(
        self, tokens: Sequence[int], n_logits: int = 1, cancel: native.CancelFlag | None = None
    ) -> np.ndarray | None:
        while self._host.completion_waiting.is_set():
            time.sleep(0.002)
        with self._host.lock:
            return super().append(tokens, n_logits, cancel)


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
        self.sessions: DocumentSessions | None = None
        self.speeds = Speeds()
        self.last_wait_ms = 0.0  # how long the last completion waited for the model
        self._warm_cancel = native.CancelFlag()  # set by a completion that wants the model: the warm-up step stops
        self._draft_session: Session | None = None
        self.last_used = time.monotonic()
        self._refactor_session: Session | None = None

    def _set(self, state: str, error: str | None = None) -> None:
        self.state, self.error = state, error
        self._on_state(self)

    def load(self, path: str = "", threads: int = 0) -> None:
        """Loads synchronously (call from a worker thread). Every failure ends in state "error" with a one-line
        message: a bad file is a ModelLoadError naming the file and the field; anything else (a bug, memory) is
        reported too, since an exception escaping this thread would leave the state "loading" for good."""
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
            self.probe_speeds()
        except (ModelLoadError, OSError, ValueError) as exc:
            self._set("error", str(exc))
        except Exception as exc:  # see the docstring: the editor must hear of any failure
            self._set("error", " ".join(f"{path or 'the model'}: {type(exc).__name__}: {exc}".split()))

    def adopt(self, model: Model, path: Path) -> None:
        """Serves an already loaded model (the pool's larger tier)."""
        with self.lock:
            self.model, self.model_path = model, path
            n_ctx = min(model.config.context_length, 2048)
            budget = min(KV_BUDGET_MAX, int(KV_BUDGET_SHARE * psutil.virtual_memory().available))
            self.sessions = DocumentSessions(model, n_ctx, budget)
            self._refactor_session = _YieldingSession(model, n_ctx, self)
            self.speeds = Speeds()
            self.last_used = time.monotonic()
        self._set("ready")

    def probe_speeds(self) -> None:
        """Times a short prefill and a few decode steps on a scratch session (the first figures `Speeds` has)."""
        with self.lock:
            if self.model is None:
                return
            s = self.model.session(SPEED_PROBE_TOKENS + 8)
            ids = [i % self.model.config.vocab for i in range(1, SPEED_PROBE_TOKENS + 1)]
            s.append(ids[:4])  # wakes the thread pool and faults the scratch in
            s.truncate(0)
            t0 = time.perf_counter()
            s.append(ids)
            self.speeds.note("prefill_tps", len(ids), time.perf_counter() - t0)
            t0 = time.perf_counter()
            for t in ids[:4]:
                s.append([t])
            self.speeds.note("decode_tps", 4, time.perf_counter() - t0)

    def unload(self) -> bool:
        """Drops the model (idle too long); the next request loads it again. False when it is in use."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            if self.model is None:
                return False
            self.model = None
            self.sessions = None
            self._refactor_session = None
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
    def completion_turn(self, uri: str = "") -> Iterator[DocumentCaches]:
        """The document's completion caches, with the model held for the whole generation (a running warm-up
        step is cancelled at its next layer)."""
        self.completion_waiting.set()
        self._warm_cancel.set()
        self.completion_running.set()
        t0 = time.perf_counter()
        try:
            with self.lock:
                self.last_wait_ms = (time.perf_counter() - t0) * 1e3  # behind a warm-up step or a refactor token
                self.completion_waiting.clear()
                self.last_used = time.monotonic()
                assert self.sessions is not None
                yield self.sessions.get(uri)
        finally:
            self.completion_waiting.clear()
            self.completion_running.clear()

    def warm(
        self, uri: str, prompt: Sequence[int], stop: Callable[[], bool] = lambda: False, quick: bool = False
    ) -> int:
        """Prefills the document's full (or quick) completion cache with `prompt` (all but its last token: the
        completion evaluates that one for its logits), WARM_CHUNK tokens a step, at the lowest priority: a
        completion that wants the model cancels the running step and goes first, and the warm-up resumes after it.
        Returns the tokens evaluated; stops when `stop()` says so (a newer warm-up, the document closed)."""
        target = [int(t) for t in prompt][:-1]
        done = 0
        while not stop():
            if self.completion_waiting.is_set():
                time.sleep(0.002)
                continue
            with self.lock:
                if self.sessions is None:
                    return done
                caches = self.sessions.get(uri)
                s = caches.quick() if quick else caches.full
                common = common_prefix(s.tokens, target)
                if common >= len(target) or len(target) > s.n_ctx:
                    return done
                s.truncate(common)
                step = target[common : common + WARM_CHUNK]
                self._warm_cancel.clear()
                if self.completion_waiting.is_set():  # it came between the check above and the clear
                    continue
                t0 = time.perf_counter()
                if s.append(step, n_logits=0, cancel=self._warm_cancel) is None:
                    continue  # a completion cancelled the step: let it run, then resume
                self.speeds.note("prefill_tps", len(step), time.perf_counter() - t0)
                done += len(step)
        return done

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
            "prefill_tokens_per_s": round(self.speeds.prefill_tps, 1),
            "decode_tokens_per_s": round(self.speeds.decode_tps, 1),
            "cached_documents": len(self.sessions) if self.sessions is not None else 0,
            "error": self.error,
            "rss_bytes": psutil.Process().memory_info().rss,
        }
