"""The session's life: initialize (settings from the client, the serving plan, how documents the client has not
opened are read), initialized (the model loads with a progress notification; memory keeping, the first-run setup
and the workspace index start), configuration changes, the health check's ping, and shutdown. The order the LSP
prescribes (nothing before initialize, one initialized, nothing after shutdown) is kept by protocol.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as t

from pyserver.server import background
from pyserver.server.acceptance import AcceptanceStats, storage_folder
from pyserver.server.documents import ClientDocuments
from pyserver.server.outcomes import CompletionOutcomes
from pyserver.server.progress import begin_progress
from pyserver.server.sidecar import RyzansteinServer
from pyserver.tiers.hardware import needs_measuring
from pyserver.tiers.setup import read_config

PING = "ryzanstein/ping"


def settings_from(obj: Any) -> dict[str, Any] | None:
    """The sidecar's settings in what the client sent: {"ryzanstein": {...}} or the settings themselves."""
    if isinstance(obj, dict):
        inner = obj.get("ryzanstein", obj)
        return inner if isinstance(inner, dict) else None
    return None


def initialize(ls: RyzansteinServer, params: t.InitializeParams) -> None:
    ls.protocol.use_workspace(ClientDocuments.like(ls.workspace))  # documents not open: read with care
    ls.settings, problems = ls.settings.checked(settings_from(params.initialization_options))
    ls.settings_problems(problems)
    ls.pipeline.settings = ls.settings.completion
    ls.acceptance = AcceptanceStats(storage_folder(ls.settings.storage_path))
    ls.outcomes = CompletionOutcomes(storage_folder(ls.settings.storage_path))
    ls.make_plan()


async def initialized(ls: RyzansteinServer, params: t.InitializedParams) -> None:
    ls.connected(asyncio.get_running_loop())
    loading = await begin_progress(ls, "Ryzanstein: loading model", cancellable=False, token_prefix="ryzanstein-load")
    thread = ls.load_completion_model()
    background.start(background.keep_memory, ls, "memory-keeper")
    if not ls.settings.model_path and read_config() is None:
        background.start(background.first_setup, ls, "first-setup")
    elif not ls.settings.model_path and needs_measuring():  # disturbed or a week old: again, when quiet
        background.schedule_measurement(ls)
    ls.index_roots = [
        Path(unquote(urlparse(f.uri).path)) for f in (ls.workspace.folders or {}).values() if f.uri.startswith("file:")
    ]
    if ls.settings.index_enable and ls.index_roots:
        indexing = await begin_progress(ls, "Ryzanstein: indexing the workspace", percentage=0)
        ls.start_index(indexing.for_index())
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    loading.end("ready" if ls.host.ready else f"failed: {ls.host.error}")


def did_change_configuration(ls: RyzansteinServer, params: t.DidChangeConfigurationParams) -> None:
    ls.apply_settings(settings_from(params.settings))


def ping(ls: RyzansteinServer, params: Any = None) -> dict[str, Any]:
    """`ryzanstein/ping`: answered at once on the event loop; the extension's health check (a sidecar that stops
    answering it is restarted)."""
    del params
    return {"state": ls.host.state}


def shutdown(ls: RyzansteinServer, *args: Any) -> None:
    del args
    ls.acceptance.save()
    ls.outcomes.save()
    ls.index.stop()
