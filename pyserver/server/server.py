"""The language server: inline completions and palette refactors over LSP (pygls 2 / lsprotocol).

Generation runs on worker threads, never on the event loop. A newer completion request for the same document, or
a `$/cancelRequest`, sets the older request's stop flag, which generation checks between tokens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer

from pyserver import __version__
from pyserver.completion.pipeline import CompletionPipeline
from pyserver.completion.prompt import context_block
from pyserver.engine.host import ModelHost
from pyserver.index.workspace import Progress
from pyserver.refactor import NewFile, TextEdit
from pyserver.refactor.docstring import docstring_edit
from pyserver.refactor.explain import explain
from pyserver.refactor.rewrite import rewrite_edit
from pyserver.refactor.write_tests import new_tests_file
from pyserver.server.acceptance import AcceptanceStats, storage_folder
from pyserver.server.downloads import Downloads
from pyserver.server.index_host import IndexHost
from pyserver.server.protocol import RyzansteinProtocol
from pyserver.server.settings import ServerSettings
from pyserver.server.tier_host import TierHost
from pyserver.tiers.plan import ServingPlan, serving_plan
from pyserver.tiers.setup import read_config

log = logging.getLogger("ryzanstein")

STATUS_NOTIFICATION = "ryzanstein/status"
# The sidecar's commands have a namespace of their own: the language client registers every command a server
# advertises as a VS Code command, which must not collide with the extension's palette commands.
COMMANDS = ("ryzanstein.sidecar.explain", "ryzanstein.sidecar.docstring", "ryzanstein.sidecar.rewrite",
            "ryzanstein.sidecar.writeTests", "ryzanstein.sidecar.status", "ryzanstein.sidecar.reindex",
            "ryzanstein.sidecar.search", "ryzanstein.sidecar.acceptance", "ryzanstein.sidecar.models",
            "ryzanstein.sidecar.download", "ryzanstein.sidecar.cancelDownload")
DOWNLOAD_NOTIFICATION = "ryzanstein/download"
# The extension's command that an accepted suggestion runs (it tells the sidecar, see `cmd_acceptance`).
ACCEPTED_COMMAND = "ryzanstein.acceptedSuggestion"
MAX_DOCUMENT_CHARS = 4_000_000  # larger documents get no completions (and never reach the model whole)
# A request waits this long for a newer one before it starts the model: a burst of keystrokes costs one run.
COALESCE_S = 0.015


class RyzansteinServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("ryzanstein", __version__, text_document_sync_kind=t.TextDocumentSyncKind.Incremental,
                         protocol_cls=RyzansteinProtocol)
        self.settings = ServerSettings()
        self.host = ModelHost(on_state=self._state_changed)
        self.pipeline = CompletionPipeline(self.host, self.settings.completion)
        self.index = IndexHost(self.host.completion_running, on_error=lambda msg: self.error_once("index", msg))
        self.index_roots: list[Path] = []
        self.tiers = TierHost()
        self.plan = ServingPlan(None, None)
        self.pipeline.index_context = lambda path, prefix, budget: [
            (h.chunk.path, h.chunk.text) for h in self.index.completion_context(path, prefix, budget)]
        self.completion_pool = ThreadPoolExecutor(1, thread_name_prefix="completion")
        self.refactor_pool = ThreadPoolExecutor(1, thread_name_prefix="refactor")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.latest: dict[str, threading.Event] = {}  # per document: the stop flag of its newest completion
        self._shown: set[str] = set()
        self._pending_problems: list[str] = []
        self.acceptance = AcceptanceStats(None)
        self.downloads = Downloads(self._download_progress)
        self.speed_recorded_at = 0.0
        self.measure_scheduled = False
        self._last_line: dict[str, int] = {}

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

    def settings_problems(self, problems: list[str]) -> None:
        """Settings that were left out, told to the user (a warning each time a change has some) and logged; before
        the client is initialized they wait for it."""
        if not problems:
            return
        log.warning("settings left out: %s", "; ".join(problems))
        if self.loop is None:
            self._pending_problems += problems
            return
        params = t.ShowMessageParams(type=t.MessageType.Warning,
                                     message="Ryzanstein left out settings it cannot use: " + "; ".join(problems))
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
            threading.Thread(target=_first_setup, args=(self,), name="setup", daemon=True).start()
        elif (self.settings.model_path, self.settings.tier) != (old.model_path, old.tier):
            before = self.plan.completion
            self.make_plan()
            if self.plan.completion != before and self.host.state != "loading":
                self.load_completion_model()
        else:
            self.tiers.configure(self.plan.large, self.settings)
        s = self.settings
        if (s.index_enable, s.index_include, s.index_exclude) != (old.index_enable, old.index_include,
                                                                   old.index_exclude):
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


server = RyzansteinServer()


def _settings_from(obj: Any) -> dict[str, Any] | None:
    if isinstance(obj, dict):
        inner = obj.get("ryzanstein", obj)
        return inner if isinstance(inner, dict) else None
    return None


@server.feature(t.INITIALIZE)
def initialize(ls: RyzansteinServer, params: t.InitializeParams) -> None:
    ls.settings, problems = ls.settings.checked(_settings_from(params.initialization_options))
    ls.settings_problems(problems)
    ls.pipeline.settings = ls.settings.completion
    ls.acceptance = AcceptanceStats(storage_folder(ls.settings.storage_path))
    ls.make_plan()


@server.feature(t.INITIALIZED)
async def initialized(ls: RyzansteinServer, params: t.InitializedParams) -> None:
    ls.loop = asyncio.get_running_loop()
    pending, ls._pending_problems = ls._pending_problems, []
    ls.settings_problems(pending)
    token = None
    caps = ls.client_capabilities.window
    if caps is not None and caps.work_done_progress:
        token = f"ryzanstein-load-{uuid.uuid4()}"
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(token, t.WorkDoneProgressBegin(title="Ryzanstein: loading model"))
        except Exception:  # a client that refuses progress still gets the model
            token = None
    thread = ls.load_completion_model()
    threading.Thread(target=_keep_memory, args=(ls,), name="memory-keeper", daemon=True).start()
    if not ls.settings.model_path and read_config() is None:
        threading.Thread(target=_first_setup, args=(ls,), name="first-setup", daemon=True).start()
    ls.index_roots = [Path(unquote(urlparse(f.uri).path)) for f in (ls.workspace.folders or {}).values()
                      if f.uri.startswith("file:")]
    if ls.settings.index_enable and ls.index_roots:
        ls.start_index(await _progress(ls, "Ryzanstein: indexing the workspace"))
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    if token is not None:
        msg = "ready" if ls.host.ready else f"failed: {ls.host.error}"
        ls.work_done_progress.end(token, t.WorkDoneProgressEnd(message=msg))


@server.feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: RyzansteinServer, params: t.DidChangeConfigurationParams) -> None:
    ls.apply_settings(_settings_from(params.settings))


@server.feature(t.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: RyzansteinServer, params: t.DidOpenTextDocumentParams) -> None:
    if len(params.text_document.text) <= MAX_DOCUMENT_CHARS:
        ls.pipeline.ring.add(params.text_document.uri, params.text_document.text, 0)


@server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: RyzansteinServer, params: t.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    for change in params.content_changes:
        if isinstance(change, t.TextDocumentContentChangePartial):
            line = change.range.start.line
            if ls._last_line.get(uri) != line:  # re-chunk when the edit moves to another line, not per keystroke
                ls._last_line[uri] = line
                doc = ls.workspace.get_text_document(uri)
                if len(doc.source) <= MAX_DOCUMENT_CHARS:
                    ls.pipeline.ring.add(uri, doc.source, line)


@server.feature(t.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: RyzansteinServer, params: t.DidSaveTextDocumentParams) -> None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    if len(doc.source) <= MAX_DOCUMENT_CHARS:
        ls.pipeline.ring.add(doc.uri, doc.source, ls._last_line.get(doc.uri, 0))


@server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: RyzansteinServer, params: t.DidCloseTextDocumentParams) -> None:
    ls._last_line.pop(params.text_document.uri, None)


@server.feature(t.TEXT_DOCUMENT_INLINE_COMPLETION, t.InlineCompletionOptions())
async def inline_completion(ls: RyzansteinServer, params: t.InlineCompletionParams) -> t.InlineCompletionList:
    empty = t.InlineCompletionList(items=[])
    uri = params.text_document.uri
    s = ls.settings
    if not s.enable or (s.trigger == "manual" and params.context.trigger_kind
                        == t.InlineCompletionTriggerKind.Automatic):
        return empty
    language = ls.workspace.get_text_document(uri).language_id or ""
    if not s.language_enabled(language):
        return empty
    if not ls.host.ready:
        if ls.host.state == "idle" and ls.host.model is None and ls.loop is not None:
            ls.load_completion_model()  # unloaded after being idle: back in the background, answer empty now
        return empty
    doc = ls.workspace.get_text_document(uri)
    text = doc.source
    model = ls.host.model
    if len(text) > MAX_DOCUMENT_CHARS or (model is not None and language and not model.traits.knows(language)):
        return empty  # (a model trained on other languages only writes junk here)
    version = doc.version
    offset = doc.offset_at_position(params.position)  # UTF-16 positions, as LSP defines them
    stop = threading.Event()
    previous = ls.latest.get(uri)
    if previous is not None:
        previous.set()
    ls.latest[uri] = stop

    def work() -> Any:
        if stop.wait(COALESCE_S):
            return None
        c = ls.pipeline.complete(uri, text, offset, stop.is_set)
        if c is not None and not stop.is_set():
            c = ls.tiers.escalate(c, uri, text, offset, stop.is_set, ls.settings) or c
        return c

    try:
        result = await asyncio.get_running_loop().run_in_executor(ls.completion_pool, work)
    except asyncio.CancelledError:
        stop.set()  # $/cancelRequest: the worker stops within one token
        raise
    except Exception as exc:  # never take the editor down: log, tell the user once, answer empty
        ls.error_once("completion", f"Ryzanstein: completion failed ({exc})", traceback.format_exc())
        return empty
    finally:
        if ls.latest.get(uri) is stop:
            del ls.latest[uri]
    if result is None or not result.text or stop.is_set():
        return empty
    if ls.workspace.get_text_document(uri).version != version:
        return empty  # the document moved on while we computed
    if not result.from_cache:
        ls.host.last_latency_ms, ls.host.last_tokens_per_s = result.latency_ms, result.tokens_per_s
        ls.send_status()
        _record_speed(ls, result.generated_tokens, result.tokens_per_s)
        # Shown once: the rest of it, forwarded from the cache as the user types into it, is the same suggestion.
        ls.acceptance.shown(uri, ls.host.model_path.name if ls.host.model_path else "?", language)
    item = t.InlineCompletionItem(insert_text=result.text, range=t.Range(start=params.position, end=params.position),
                                  command=t.Command(title="accepted", command=ACCEPTED_COMMAND,
                                                    arguments=[{"uri": uri}]))
    return t.InlineCompletionList(items=[item])


# ---- refactors ---------------------------------------------------------------------------

async def _progress(ls: RyzansteinServer, title: str) -> Progress:
    """Work-done progress a worker thread can report to and the user can cancel (a no-op for clients without it)."""
    caps = ls.client_capabilities.window
    if caps is None or not caps.work_done_progress or ls.loop is None:
        return Progress()
    token = f"ryzanstein-{uuid.uuid4()}"
    try:
        await ls.work_done_progress.create_async(token)
    except Exception:
        return Progress()
    ls.work_done_progress.begin(token, t.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0))
    cancelled = threading.Event()
    fut = ls.work_done_progress.tokens.get(token)
    if fut is not None:
        fut.add_done_callback(lambda f: cancelled.set() if f.cancelled() else None)
    loop = ls.loop
    ended = threading.Event()

    def report(done: int, total: int, message: str) -> None:
        if ended.is_set():
            return
        if done >= total:
            ended.set()
            loop.call_soon_threadsafe(ls.work_done_progress.end, token, t.WorkDoneProgressEnd(message="done"))
            return
        pct = int(100 * done / max(1, total))
        loop.call_soon_threadsafe(ls.work_done_progress.report, token,
                                  t.WorkDoneProgressReport(message=message, percentage=pct))

    return Progress(report=report, cancelled=cancelled.is_set)


def _arg(args: tuple[Any, ...]) -> dict[str, Any]:
    if not args or not isinstance(args[0], dict) or not isinstance(args[0].get("uri"), str):
        raise ValueError('expected one argument {"uri": ..., "range" | "position": ...}')
    return args[0]


def _pos(d: Any) -> t.Position:
    if not isinstance(d, dict) or not isinstance(d.get("line"), int) or not isinstance(d.get("character"), int):
        raise ValueError("a position needs integer 'line' and 'character'")
    return t.Position(line=d["line"], character=d["character"])


async def _run_refactor(ls: RyzansteinServer, title: str, job: Any) -> Any:
    """Runs job(should_stop, session) on the refactor thread with work-done progress; the user can cancel from the
    progress notification."""
    if not ls.host.ready:
        raise ValueError(f"the model is not ready ({ls.host.state})")
    token = f"ryzanstein-{uuid.uuid4()}"
    stop = threading.Event()
    caps = ls.client_capabilities.window
    progress = caps is not None and bool(caps.work_done_progress)
    if progress:
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(token, t.WorkDoneProgressBegin(title=title, cancellable=True))
            fut = ls.work_done_progress.tokens.get(token)
            if fut is not None:
                fut.add_done_callback(lambda f: stop.set() if f.cancelled() else None)
        except Exception:
            progress = False
    ls.host.state = "busy"
    ls.send_status()
    def run() -> Any:
        # The larger tier writes refactors when there is one (loaded now if needed); else the completion model.
        with ls.tiers.refactor_session(ls.settings, drafter=ls.host) as large:
            return job(stop.is_set, large if large is not None else ls.host.refactor_session())

    try:
        return await asyncio.get_running_loop().run_in_executor(ls.refactor_pool, run)
    except asyncio.CancelledError:
        stop.set()
        raise
    finally:
        ls.host.state = "ready" if ls.host.model is not None else ls.host.state
        ls.send_status()
        if progress:
            ls.work_done_progress.end(token, t.WorkDoneProgressEnd(message="cancelled" if stop.is_set() else "done"))


async def _apply(ls: RyzansteinServer, uri: str, version: int | None, edit: TextEdit | NewFile) -> dict[str, Any]:
    """Sends the edit with the document version it was computed on; refuses it here if the document moved on."""
    doc = ls.workspace.get_text_document(uri)
    if isinstance(edit, TextEdit):
        if doc.version != version:
            return {"applied": False, "reason": f"the document changed (version {version} -> {doc.version})"}
        rng = t.Range(start=doc.client_position_at_offset(edit.start), end=doc.client_position_at_offset(edit.end))
        changes: list[Any] = [t.TextDocumentEdit(
            text_document=t.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
            edits=[t.TextEdit(range=rng, new_text=edit.new_text)])]
    else:
        target = uri.rsplit("/", 1)[0] + "/" + edit.name
        changes = [t.CreateFile(uri=target, options=t.CreateFileOptions(ignore_if_exists=True)),
                   t.TextDocumentEdit(
                       text_document=t.OptionalVersionedTextDocumentIdentifier(uri=target, version=None),
                       edits=[t.TextEdit(range=t.Range(start=t.Position(line=0, character=0),
                                                       end=t.Position(line=0, character=0)),
                                         new_text=edit.text)])]
    result = await ls.workspace_apply_edit_async(t.ApplyWorkspaceEditParams(
        edit=t.WorkspaceEdit(document_changes=changes), label="Ryzanstein"))
    out: dict[str, Any] = {"applied": bool(result.applied)}
    if not result.applied:
        out["reason"] = result.failure_reason or "the editor refused the edit"
    return out


@server.command("ryzanstein.sidecar.explain")
async def cmd_explain(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = _arg(args)
    doc = ls.workspace.get_text_document(a["uri"])
    rng = a.get("range") or {}
    start, end = doc.offset_at_position(_pos(rng.get("start"))), doc.offset_at_position(_pos(rng.get("end")))
    selection = doc.source[start:end] or doc.lines[_pos(rng.get("start")).line]
    context = _workspace_context(ls, a["uri"], selection)
    text = await _run_refactor(ls, "Ryzanstein: explaining", lambda stop, session: explain(
        session, selection, ls.settings.refactor_max_tokens // 2, stop, context))
    return {"text": text} if text is not None else {"cancelled": True}


def _workspace_context(ls: RyzansteinServer, uri: str, code: str) -> str:
    """Definitions (from the workspace index) of what the code uses, for a refactor's prompt."""
    path = unquote(urlparse(uri).path) if uri.startswith("file:") else None
    hits = ls.index.completion_context(path, code, ls.settings.context_chars)
    return "".join(context_block(h.chunk.path, h.chunk.text) for h in hits)


async def _edit_command(ls: RyzansteinServer, a: dict[str, Any], title: str, make: Any) -> dict[str, Any]:
    """Runs make(session, text, stop, context) -> edit | reason | None on the document as it is now, then applies
    the edit against that version. `context`: workspace code the text around the cursor uses."""
    doc = ls.workspace.get_text_document(a["uri"])
    version, text = doc.version, doc.source
    line = _pos(a.get("position") or (a.get("range") or {}).get("start")).line
    around = "\n".join(doc.lines[max(0, line - 5): line + 25])
    edit = await _run_refactor(ls, title, lambda stop, session: make(session, text, stop,
                                                                      _workspace_context(ls, a["uri"], around)))
    if edit is None:
        return {"cancelled": True}
    if isinstance(edit, str):
        return {"applied": False, "reason": edit}
    return await _apply(ls, a["uri"], version, edit)


@server.command("ryzanstein.sidecar.docstring")
async def cmd_docstring(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = _arg(args)
    line, n = _pos(a.get("position")).line + 1, ls.settings.refactor_max_tokens // 2
    return await _edit_command(ls, a, "Ryzanstein: writing a docstring",
                               lambda session, text, stop, ctx: docstring_edit(session, text, line, n, stop, ctx))


@server.command("ryzanstein.sidecar.rewrite")
async def cmd_rewrite(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = _arg(args)
    instruction = a.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("rewrite needs an 'instruction'")
    doc = ls.workspace.get_text_document(a["uri"])
    rng = a.get("range") or {}
    start, end = doc.offset_at_position(_pos(rng.get("start"))), doc.offset_at_position(_pos(rng.get("end")))
    n = ls.settings.refactor_max_tokens
    return await _edit_command(ls, a, "Ryzanstein: rewriting",
                               lambda session, text, stop, ctx: rewrite_edit(session, text, start, end, instruction,
                                                                             n, stop, ctx))


@server.command("ryzanstein.sidecar.writeTests")
async def cmd_write_tests(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = _arg(args)
    line, n = _pos(a.get("position")).line + 1, ls.settings.refactor_max_tokens
    name = Path(unquote(urlparse(a["uri"]).path)).name or "module.py"
    return await _edit_command(ls, a, "Ryzanstein: writing tests",
                               lambda session, text, stop, ctx: new_tests_file(session, text, line, name, n,
                                                                               stop, ctx))


@server.command("ryzanstein.sidecar.status")
def cmd_status(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    del args
    status = ls.host.status()
    status["computed_completions"] = ls.pipeline.model_runs
    status["finished_completions"] = ls.pipeline.finished_runs
    status["cancelled_completions"] = ls.pipeline.stopped_runs
    status["index"] = ls.index.status()
    status["larger_tier"] = ls.tiers.status()
    status["serving_plan"] = ls.plan.reasons
    status["acceptance"] = ls.acceptance.summary()
    return status


@server.command("ryzanstein.sidecar.acceptance")
def cmd_acceptance(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    """{"uri", "event": "accepted" | "accepted_word" | "accepted_line"}: the user took (part of) the suggestion
    last shown in that document."""
    a = args[0] if args and isinstance(args[0], dict) else {}
    uri, event = a.get("uri"), a.get("event")
    if not isinstance(uri, str) or not isinstance(event, str):
        raise ValueError('expected one argument {"uri": ..., "event": ...}')
    counted = ls.acceptance.accepted(uri, event)
    if counted:
        ls.send_status()
    return {"counted": counted}


@server.command("ryzanstein.sidecar.models")
async def cmd_models(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    """Every registry model with its tier, download size, memory, predicted speed here and whether it is present;
    what serves now; downloads under way."""
    del args
    from pyserver.tiers.setup import models_table

    table = await asyncio.get_running_loop().run_in_executor(None, lambda: models_table(ls.settings.model_folders,
                                                                                        measure=False))
    return table | {"serving": {"completion": ls.host.model_path.name if ls.host.model_path else None,
                                "reasons": ls.plan.reasons}, "downloads": ls.downloads.status()}


@server.command("ryzanstein.sidecar.download")
def cmd_download(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    """{"id"}: downloads a registry model in the background (progress as ryzanstein/download notifications), then
    runs the setup's discovery again and serves by the new plan, with no restart."""
    from pyserver.tiers.download import download_model
    from pyserver.tiers.registry import Registry

    a = args[0] if args and isinstance(args[0], dict) else {}
    spec = Registry.load().by_id(str(a.get("id", "")))
    if spec is None:
        raise ValueError(f"no model {a.get('id')!r} in the registry")
    job = ls.downloads.start(spec.id, lambda progress, cancelled: download_model(
        spec, progress=progress, cancelled=cancelled), lambda _path: _first_setup(ls))
    return job.to_json()


@server.command("ryzanstein.sidecar.cancelDownload")
def cmd_cancel_download(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = args[0] if args and isinstance(args[0], dict) else {}
    return {"cancelled": ls.downloads.cancel(str(a.get("id", "")))}


@server.command("ryzanstein.sidecar.reindex")
async def cmd_reindex(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    del args
    if not ls.index.indexes:
        return {"indexed": False, "reason": "no workspace folder is indexed (or indexing is off)"}
    progress = await _progress(ls, "Ryzanstein: re-indexing")
    reports = await asyncio.get_running_loop().run_in_executor(None, ls.index.reindex, progress)
    progress.report(1, 1, "done")
    return {"indexed": True, "files_indexed": sum(r.files_indexed for r in reports),
            "files_removed": sum(r.files_removed for r in reports), **ls.index.status()}


@server.command("ryzanstein.sidecar.search")
async def cmd_search(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = args[0] if args and isinstance(args[0], dict) else {}
    query = a.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("search needs a non-empty 'query'")
    k = a.get("k", 10)
    k = k if isinstance(k, int) and 0 < k <= 100 else 10
    hits: list[dict[str, Any]] = []
    for index in ls.index.indexes:
        found = await asyncio.get_running_loop().run_in_executor(ls.refactor_pool, index.search, query, k)
        hits += [{"uri": (index.root / h.chunk.path).as_uri(), "range": {
            "start": {"line": h.chunk.start_line - 1, "character": 0},
            "end": {"line": h.chunk.end_line, "character": 0}}, "symbol": h.chunk.symbol, "score": h.score}
            for h in found]
    return {"hits": sorted(hits, key=lambda h: -h["score"])[:k]}


def _first_setup(ls: RyzansteinServer, measure: bool = False) -> None:
    """No setup decision yet (or new model folders, or a model just downloaded): make one (profile, discovery,
    choice) and serve by it, with no step for the user. The engine's speed is not measured now, while the editor
    starts (the cached measurement serves, else a provisional one); `_measure_when_quiet` measures it later."""
    try:
        from pyserver.tiers.setup import run_setup

        result = run_setup(ls.settings.model_folders, measure=measure)
    except Exception:  # noqa: BLE001 - the shipped model keeps serving
        log.exception("automatic setup failed")
        return
    before = ls.plan.completion
    ls.make_plan()
    if ls.plan.completion != before and ls.host.state != "loading":
        ls.load_completion_model()
    if not measure and not result.get("hardware", {}).get("measured", True) and not ls.measure_scheduled:
        ls.measure_scheduled = True  # one waiting measurement, however many setups ran meanwhile
        threading.Thread(target=_measure_when_quiet, args=(ls,), name="setup-measure", daemon=True).start()


QUIET_S = 20.0  # no completion for this long: the machine is free to measure


def _measure_when_quiet(ls: RyzansteinServer) -> None:
    """The setup's speed measurement (a few seconds of both cores) once the user has paused typing, then the
    decision again with it."""
    time.sleep(QUIET_S)
    while time.monotonic() - ls.host.last_used < QUIET_S or ls.host.state == "busy":
        time.sleep(5)
    log.info("measuring this machine's decode speed for the setup (the editor is idle)")
    _first_setup(ls, measure=True)
    ls.measure_scheduled = False


def _record_speed(ls: RyzansteinServer, tokens: int, tokens_per_s: float) -> None:
    """Decode speeds seen in use correct the setup's predictions (pyserver/tiers/hardware.py); one sample a
    minute at most, from decodes long enough to mean something."""
    now = time.monotonic()
    if tokens < 8 or now - ls.speed_recorded_at < 60 or ls.host.model_path is None:
        return
    ls.speed_recorded_at = now
    from pyserver.models import default_model_path
    from pyserver.tiers.hardware import record_observed

    path = ls.host.model_path
    paths = (read_config() or {}).get("model_paths", {})
    model_id = next((i for i, p in paths.items() if Path(p) == path), None)
    if model_id is None and path == default_model_path():
        model_id = "ryzanstein-code"
    if model_id is not None:
        record_observed(model_id, tokens_per_s)


def _keep_memory(ls: RyzansteinServer) -> None:
    """Unloads models idle longer than the setting; they load again when needed."""
    while True:
        time.sleep(30)
        idle_s = ls.settings.unload_idle_minutes * 60
        if not idle_s:
            continue
        ls.tiers.unload_idle()
        if ls.host.model is not None and time.monotonic() - ls.host.last_used > idle_s and ls.host.unload():
            log.info("unloaded the completion model after %d idle minutes", ls.settings.unload_idle_minutes)


@server.feature(t.SHUTDOWN)
def shutdown(ls: RyzansteinServer, *args: Any) -> None:
    del args
    ls.acceptance.save()
    ls.index.stop()


def serve() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO
    log.info("ryzanstein %s starting (stdio)", __version__)
    started = time.perf_counter()
    server.start_io()
    log.info("stopped after %.0f s", time.perf_counter() - started)
