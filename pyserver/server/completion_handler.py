"""textDocument/inlineCompletion: the ghost-text suggestion at the cursor.

Generation runs on the completion worker thread, never on the event loop. A newer request for the same document,
or a `$/cancelRequest`, sets the older request's stop flag, which generation checks between tokens. Anything that
goes wrong answers an empty list: completions never take the editor down.
"""

from __future__ import annotations

import asyncio
import threading
import traceback

from lsprotocol import types as t

from pyserver.completion.pipeline import Completion
from pyserver.server.background import record_speed
from pyserver.server.documents import MAX_DOCUMENT_CHARS
from pyserver.server.sidecar import RyzansteinServer

# The extension's command that an accepted suggestion runs (it tells the sidecar: ryzanstein.sidecar.acceptance).
ACCEPTED_COMMAND = "ryzanstein.acceptedSuggestion"
# A request waits this long for a newer one before it starts the model: a burst of keystrokes costs one run.
COALESCE_S = 0.015


async def inline_completion(ls: RyzansteinServer, params: t.InlineCompletionParams) -> t.InlineCompletionList:
    empty = t.InlineCompletionList(items=[])
    uri = params.text_document.uri
    s = ls.settings
    if not s.enable or (
        s.trigger == "manual" and params.context.trigger_kind == t.InlineCompletionTriggerKind.Automatic
    ):
        return empty
    language = ls.workspace.get_text_document(uri).language_id or ""
    if not s.language_enabled(language) or not _model_ready(ls):
        return empty
    doc = ls.workspace.get_text_document(uri)
    text, version = doc.source, doc.version
    model = ls.host.model
    if len(text) > MAX_DOCUMENT_CHARS or (model is not None and language and not model.traits.knows(language)):
        return empty  # (a model trained on other languages only writes junk here)
    offset = doc.offset_at_position(params.position)  # UTF-16 positions, as LSP defines them
    stop = threading.Event()
    result = await _generate(ls, uri, text, offset, stop)
    if result is not None and result.cold:  # the prompt was cut to fit the time budget: warm the whole one
        ls.warmups.request(ls.host, ls.pipeline, uri, text, offset)
    if result is None or not result.text or stop.is_set():
        return empty
    if ls.workspace.get_text_document(uri).version != version:
        return empty  # the document moved on while we computed
    if not result.from_cache:
        _shown(ls, uri, language, result)
    item = t.InlineCompletionItem(
        insert_text=result.text,
        range=t.Range(start=params.position, end=params.position),
        command=t.Command(title="accepted", command=ACCEPTED_COMMAND, arguments=[{"uri": uri}]),
    )
    return t.InlineCompletionList(items=[item])


def _model_ready(ls: RyzansteinServer) -> bool:
    """Whether the completion model can answer now; one unloaded after idling starts loading again in the
    background (this request answers empty)."""
    if ls.host.ready:
        return True
    if ls.host.state == "idle" and ls.host.model is None and ls.loop is not None:
        ls.load_completion_model()
    return False


async def _generate(ls: RyzansteinServer, uri: str, text: str, offset: int, stop: threading.Event) -> Completion | None:
    """Runs the pipeline (and the larger tier when it should take over) on the completion thread; `stop` becomes
    the document's newest stop flag, and a newer request or a cancel sets it. None: superseded, or it failed."""
    previous = ls.latest.get(uri)
    if previous is not None:
        previous.set()
    ls.latest[uri] = stop

    def work() -> Completion | None:
        if stop.wait(COALESCE_S):
            return None
        c = ls.pipeline.complete(uri, text, offset, stop.is_set)
        if c is not None and not stop.is_set():
            c = ls.tiers.escalate(c, uri, text, offset, stop.is_set, ls.settings) or c
        return c

    try:
        return await asyncio.get_running_loop().run_in_executor(ls.completion_pool, work)
    except asyncio.CancelledError:
        stop.set()  # $/cancelRequest: the worker stops within one token
        raise
    except Exception as exc:  # never take the editor down: log, tell the user once, answer empty
        ls.error_once("completion", f"Ryzanstein: completion failed ({exc})", traceback.format_exc())
        return None
    finally:
        if ls.latest.get(uri) is stop:
            del ls.latest[uri]


def _shown(ls: RyzansteinServer, uri: str, language: str, result: Completion) -> None:
    """A suggestion the model computed (not one forwarded from the cache) is shown: its speed goes to the status
    and the setup's speed record, and it counts once for the acceptance statistics."""
    ls.host.last_latency_ms, ls.host.last_tokens_per_s = result.latency_ms, result.tokens_per_s
    ls.send_status()
    record_speed(ls, result.generated_tokens, result.tokens_per_s)
    # Shown once: the rest of it, forwarded from the cache as the user types into it, is the same suggestion.
    ls.acceptance.shown(uri, ls.host.model_path.name if ls.host.model_path else "?", language)
