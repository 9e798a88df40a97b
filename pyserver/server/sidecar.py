"""RyzansteinServer: the sidecar's state (settings, the model hosts, the index, the worker threads) and what every
handler shares: status notifications, one error popup per kind of problem, the serving plan, settings changes.
The handlers that use it are registered on the one instance in server.py."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from lsprotocol import types as t
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer

from pyserver import __version__
from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.index.workspace import Progress
from pyserver.server import background
from pyserver.server.acceptance import AcceptanceStats
from pyserver.server.downloads import Downloads
from pyserver.server.index_host import IndexHost
from pyserver.server.outcomes import CompletionOutcomes
from pyserver.server.protocol import RyzansteinProtocol
from pyserver.server.settings import ServerSettings
from pyserver.server.tier_host import TierHost
from pyserver.server.warmup import WarmUps
from pyserver.tiers.plan import ServingPlan, serving_plan
from pyserver.tiers.setup import read_config

log = logging.getLogger("ryzanstein")

STATUS_NOTIFICATION = "ryzanstein/status"
DOWNLOAD_NOTIFICATION = "ryzanstein/download"


class RyzansteinServer(LanguageServer):
    """The sidecar: one instance, `server.server`, with every handler registered on it."""

    protocol: RyzansteinProtocol

    def __init__(self) -> None:
        super().__init__(
            "ryzanstein",
            __version__,
            text_document_sync_kind=t.TextDocumentSyncKind.Incremental,
            protocol_cls=RyzansteinProtocol,
        )
        self.settings = ServerSettings()
        self.host = ModelHost(on_state=self._state_changed)
        self.pipeline = CompletionPipeline(self.host, self.settings.completion)
        self.index = IndexHost(self.host.completion_running, on_error=lambda msg: self.error_once("index", msg))
        self.index_roots: list[Path] = []
        self.tiers = TierHost()
        self.plan = ServingPlan(None, None)
        self.pipeline.index_context = lambda path, prefix, budget: [
            (h.chunk.path, h.chunk.text) for h in self.index.completion_context(path, prefix, budget)
        ]
        self.completion_pool = ThreadPoolExecutor(1, thread_name_prefix="completion")
        self.refactor_pool = ThreadPoolExecutor(1, thread_name_prefix="refactor")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.latest: dict[str, threading.Event] = {}  # per document: the stop flag of its newest completion
        self.warmups = WarmUps()
        self._shown: set[str] = set()
        self._pending_problems: list[str] = []
        self.acceptance = AcceptanceStats(None)
        self.outcomes = CompletionOutcomes(None)  # how completion requests ended, by reason
        self.downloads = Downloads(self._download_progress)
        self.speed_recorded_at = 0.0
        self.measure_scheduled = False
        self.last_line: dict[str, int] = {}  # per document: the line last edited (see documents.py)

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serves on stdio until `exit` or the end of stdin, reading with our own framing (protocol.py) instead of
        pygls' reader; the process's exit code is then `self.protocol.exit_code`."""
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(self.protocol.serve(stdin or sys.stdin.buffer))
        except BrokenPipeError:
            log.error("the client closed its end of the pipe: stopping")
            self.protocol.exit_code = 1
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]  # pygls: its thread pool

    # ---- status and errors -------------------------------------------------------------

    def _state_changed(self, host: ModelHost) -> None:
        if host.state == "error" and host.error:
            self.error_once("model", f"Ryzanstein: the model could not be loaded: {host.error}")
        self.send_status()

    def _download_progress(self, job: dict[str, Any]) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.protocol.notify, DOWNLOAD_NOTIFICATION, job)

    def send_status(self) -> None:
        status = self.host.status()
        acc = self.acceptance.summary()
        status["acceptance"] = {k: acc[k] for k in ("shown", "accepted", "acceptance_rate", "partial_rate")}
        status["last_outcome"] = self.outcomes.last
        if self.loop is None:
            return
        self.loop.call_soon_threadsafe(self.protocol.notify, STATUS_NOTIFICATION, status)

    def error_once(self, key: str, message: str, detail: str = "") -> None:
        """One popup per kind of problem; the details go to the log."""
        log.error("%s %s", message, detail)
        if key in self._shown or self.loop is None:
            return
        self._shown.add(key)
        params = t.ShowMessageParams(type=t.MessageType.Error, message=message)
        self.loop.call_soon_threadsafe(self.window_show_message, params)

    def connected(self, loop: asyncio.AbstractEventLoop) -> None:
        """The client is initialized: notifications can go out (on `loop`), the settings problems found before
        first."""
        self.loop = loop
        pending, self._pending_problems = self._pending_problems, []
        self.settings_problems(pending)

    def settings_problems(self, problems: list[str]) -> None:
        """Settings that were left out, told to the user (a warning each time a change has some) and logged; before
        the client is initialized they wait for it."""
        if not problems:
            return
        log.warning("settings left out: %s", "; ".join(problems))
        if self.loop is None:
            self._pending_problems += problems
            return
        params = t.ShowMessageParams(
            type=t.MessageType.Warning, message="Ryzanstein left out settings it cannot use: " + "; ".join(problems)
        )
        self.loop.call_soon_threadsafe(self.window_show_message, params)

    def make_plan(self) -> None:
        """Which models serve: the settings, else the setup's decision (`python -m pyserver setup`)."""
        self.plan = serving_plan(self.settings.model_path, self.settings.tier, read_config())
        self.tiers.configure(self.plan.large, self.settings)
        log.info("serving plan: %s", "; ".join(self.plan.reasons))

    def load_completion_model(self) -> threading.Thread:
        return self.host.load_in_background(str(self.plan.completion or ""), self.settings.threads)

    def apply_settings(self, values: dict[str, Any] | None) -> None:
        old = self.settings
        self.settings, problems = old.checked(values)
        self.settings_problems(problems)
        self.pipeline.settings = self.settings.completion
        if self.settings.model_folders != old.model_folders and not self.settings.model_path:
            background.start(background.first_setup, self, "setup")
        elif (self.settings.model_path, self.settings.tier) != (old.model_path, old.tier):
            before = self.plan.completion
            self.make_plan()
            if self.plan.completion != before and self.host.state != "loading":
                self.load_completion_model()
        else:
            self.tiers.configure(self.plan.large, self.settings)
        s = self.settings
        if (s.index_enable, s.index_include, s.index_exclude) != (
            old.index_enable,
            old.index_include,
            old.index_exclude,
        ):
            self.restart_index()

    def start_index(self, progress: Progress | None = None) -> None:
        s = self.settings
        if s.index_enable and self.index_roots:
            self.index.start(self.index_roots, s.storage_path, s.index_include, s.index_exclude, progress)

    def restart_index(self) -> None:
        """New include/exclude rules: a new index host over the same folders (the scan drops what is now out)."""
        old = self.index
        self.index = IndexHost(self.host.completion_running, on_error=lambda msg: self.error_once("index", msg))
        threading.Thread(target=old.stop, name="index-stop", daemon=True).start()
        self.start_index()
