"""The larger tier beside the completion model: it writes the refactors and answers the completions the small model
is unsure of. Loaded when first needed through the model pool (within the RAM budget, unloaded when idle too
long, loaded again on the next use)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from pyserver.completion.pipeline import Completion, CompletionPipeline
from pyserver.completion.remote import remote_completion
from pyserver.engine import Model, ModelLoadError, Session
from pyserver.engine.host import ModelHost
from pyserver.engine.speculative import check_compatible
from pyserver.refactor.writer import FallbackWriter, LocalWriter, Writer
from pyserver.server.settings import ServerSettings
from pyserver.tiers.hardware import HardwareProfile
from pyserver.tiers.pool import MemoryBudgetError, ModelPool
from pyserver.tiers.remote import RemoteConfig, RemoteEngine
from pyserver.tiers.routing import should_escalate
from pyserver.tiers.selection import ram_budget

log = logging.getLogger("ryzanstein")


def _load(path: Path) -> Model:
    model = Model.load(path)
    if model.tokenizer is None:
        raise ModelLoadError(path, "the model has no tokenizer")
    return model


class TierHost:
    def __init__(self) -> None:
        self.path: Path | None = None
        vm = psutil.virtual_memory()
        budget = ram_budget(HardwareProfile(vm.total, vm.available, 1, 1, (), 0.0))
        self.pool = ModelPool(budget, idle_unload_s=15 * 60, loader=_load)
        self._hosts: dict[int, tuple[Model, ModelHost, CompletionPipeline]] = {}
        self._lock = threading.Lock()
        self.escalations = 0
        self.remote: RemoteEngine | None = None  # the remote tier, when the user configured one

    def configure(self, path: Path | None, settings: ServerSettings) -> None:
        self.path = path
        self.pool.idle_unload_s = settings.unload_idle_minutes * 60 if settings.unload_idle_minutes else float("inf")
        self._configure_remote(settings)

    def _configure_remote(self, settings: ServerSettings) -> None:
        config = None
        if settings.remote_url:
            key = settings.remote_api_key or os.environ.get("RYZANSTEIN_REMOTE_API_KEY", "")
            config = RemoteConfig(settings.remote_url, key, settings.remote_model, settings.remote_fim)
        if config == (self.remote.config if self.remote is not None else None):
            return
        try:
            self.remote = RemoteEngine(config) if config is not None else None
        except ValueError as exc:
            log.warning("remote tier not used: %s", exc)
            self.remote = None

    @property
    def remote_serves(self) -> bool:
        """Whether the remote tier takes the refactors now (configured, and not marked down)."""
        return self.remote is not None and not self.remote.down

    @contextlib.contextmanager
    def refactor_writer(
        self, settings: ServerSettings, drafter: ModelHost, completion_session: Callable[[], Session]
    ) -> Iterator[Writer]:
        """What writes a refactor: the remote tier when configured and reachable (the local tiers take over if it
        fails), else the larger local tier, else the completion model."""
        with contextlib.ExitStack() as stack:

            def local() -> Writer:
                large = stack.enter_context(self.refactor_session(settings, drafter))
                return LocalWriter(large if large is not None else completion_session())

            remote = self.remote
            yield FallbackWriter(remote, local) if remote is not None and remote.available() else local()

    def _serving(self, model: Model, settings: ServerSettings) -> tuple[ModelHost, CompletionPipeline]:
        with self._lock:
            entry = self._hosts.get(id(model))
            if entry is None or entry[0] is not model:
                host = ModelHost()
                host.adopt(model, Path(model.path))
                entry = self._hosts[id(model)] = (model, host, CompletionPipeline(host, settings.completion))
            entry[2].settings = settings.completion
            return entry[1], entry[2]

    @contextlib.contextmanager
    def refactor_session(self, settings: ServerSettings, drafter: ModelHost | None = None) -> Iterator[Session | None]:
        """The larger tier's refactor session, loading it if needed; None when there is none or it cannot load
        (the caller falls back to the completion model). With a drafter (the completion model) that shares its
        tokenizer, generation drafts with it and verifies in batches."""
        with contextlib.ExitStack() as stack:
            model = None
            if self.path is not None:
                try:
                    model = stack.enter_context(self.pool.use(self.path))
                except (MemoryBudgetError, ModelLoadError, OSError) as exc:
                    log.warning("larger tier unavailable (%s): the completion model writes the refactor", exc)
            if model is None:
                yield None
                return
            session = self._serving(model, settings)[0].refactor_session()
            session.draft = None
            draft = drafter.draft_session() if drafter is not None else None
            if draft is not None:
                try:
                    check_compatible(model, draft.model)
                    session.draft = draft
                except ValueError:
                    pass  # different tokenizers: no drafting
            yield session

    def escalate(
        self, c: Completion, uri: str, text: str, offset: int, should_stop: Callable[[], bool], settings: ServerSettings
    ) -> Completion | None:
        """The larger tier's completion when the small model was unsure: the remote tier's when it fills the middle
        and is up, else the larger local tier's when it is loaded and idle."""
        if not settings.escalation or c.from_cache or not should_escalate(c.mean_entropy):
            return None
        remote = self.remote
        if remote is not None and remote.config.fim and not remote.down:
            better = remote_completion(remote, text, offset, should_stop, settings.completion)
            if better is not None and better.text:
                self.escalations += 1
                return better
        if self.path is None or not self.pool.is_idle(self.path):
            return None
        with self.pool.use(self.path) as model:
            better = self._serving(model, settings)[1].complete(uri, text, offset, should_stop)
        if better is not None:
            self.escalations += 1
        return better

    def unload_idle(self) -> None:
        gone = self.pool.unload_idle()
        if gone:
            log.info("unloaded idle models: %s", ", ".join(p.name for p in gone))
            with self._lock:
                self._hosts = {k: v for k, v in self._hosts.items() if Path(v[0].path) not in gone}

    def status(self) -> dict[str, object]:
        return {
            "model": self.path.name if self.path else None,
            "loaded": bool(self.path and self.path in self.pool.loaded()),
            "escalations": self.escalations,
            "remote": self.remote.status() if self.remote is not None else None,
        }
