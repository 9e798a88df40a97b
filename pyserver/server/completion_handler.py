"""textDocument/inlineCompletion: the ghost-text suggestion at the cursor.

Generation runs on the completion worker thread, never on the event loop. A newer request for the same document,
or a `$/cancelRequest`, sets the older request's stop flag, which generation checks between tokens. Anything that
goes wrong answers an empty list: completions never take the editor down.

Every request ends with an outcome (pyserver/completion/outcome.py): why it is empty, or that it is shown. It goes
to the client as a `ryzanstein/completion` notification sent before the answer (so an editor asked explicitly can
say why nothing came), into one log line at info (no document text unless `logPrompts` is on), and into the counts
by reason that the status command and the doctor show.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from pathlib import PurePosixPath

from lsprotocol import types as t

from pyserver.completion.outcome import Outcome
from pyserver.completion.pipeline import Completion
from pyserver.server.background import record_speed
from pyserver.server.document_text import chars, clamped
from pyserver.server.documents import MAX_DOCUMENT_CHARS
from pyserver.server.sidecar import RyzansteinServer

log = logging.getLogger("ryzanstein")

# The extension's command that an accepted suggestion runs (it tells the sidecar: ryzanstein.sidecar.acceptance).
ACCEPTED_COMMAND = "ryzanstein.acceptedSuggestion"
OUTCOME_NOTIFICATION = "ryzanstein/completion"
# A request waits this long for a newer one before it starts the model: a burst of keystrokes costs one run.
COALESCE_S = 0.015


async def inline_completion(ls: RyzansteinServer, params: t.InlineCompletionParams) -> t.InlineCompletionList:
    t0 = time.perf_counter()
    result: Completion | None = None
    try:
        outcome, result, items = await _answer(ls, params)
    except asyncio.CancelledError:
        _report(ls, params, Outcome.of("cancelled"), None, t0)
        raise
    _report(ls, params, outcome, result, t0)
    return t.InlineCompletionList(items=items)


async def _answer(
    ls: RyzansteinServer, params: t.InlineCompletionParams
) -> tuple[Outcome, Completion | None, list[t.InlineCompletionItem]]:
    """(why, the pipeline's result if it ran, the items)."""
    uri = params.text_document.uri
    s = ls.settings
    if not s.enable:
        return Outcome.of("disabled"), None, []
    if s.trigger == "manual" and params.context.trigger_kind == t.InlineCompletionTriggerKind.Automatic:
        return Outcome.of("manual_only"), None, []
    language = ls.workspace.get_text_document(uri).language_id or ""
    if not s.language_enabled(language):
        return Outcome.of("language_off", detail=language or "this language"), None, []
    if not _model_ready(ls):
        return Outcome.of("model_loading"), None, []
    doc = ls.workspace.get_text_document(uri)
    model = ls.host.model
    if chars(doc) > MAX_DOCUMENT_CHARS:
        return Outcome.of("too_large"), None, []
    if model is not None and language and not model.traits.knows(language):
        return Outcome.of("language_unknown", detail=language), None, []  # (it would only write junk here)
    text, version = doc.source, doc.version
    at = clamped(doc, params.position)  # a position past an end means that end (LSP): never echoed back as it came
    offset = doc.offset_at_position(at)  # UTF-16 positions, as LSP defines them
    stop = threading.Event()
    result, failure = await _generate(ls, uri, text, offset, stop)
    if result is not None and result.cold:  # the prompt was cut to fit the time budget: warm the whole one
        ls.warmups.request(ls.host, ls.pipeline, uri, text, offset)
    if failure:
        return Outcome.of("error", detail=failure), result, []
    if result is None or stop.is_set():
        return Outcome.of("model_loading" if ls.host.model is None else "superseded"), result, []
    if not result.text:
        return result.outcome, result, []
    if ls.workspace.get_text_document(uri).version != version:
        return Outcome.of("document_changed"), result, []  # the document moved on while we computed
    if not result.from_cache:
        _shown(ls, uri, language, result)
    item = t.InlineCompletionItem(
        insert_text=result.text,
        range=t.Range(start=at, end=at),
        command=t.Command(title="accepted", command=ACCEPTED_COMMAND, arguments=[{"uri": uri}]),
    )
    return result.outcome, result, [item]


def _report(
    ls: RyzansteinServer, params: t.InlineCompletionParams, outcome: Outcome, result: Completion | None, t0: float
) -> None:
    """The outcome: counted, logged (one line), and sent to the client before the answer."""
    uri, pos = params.text_document.uri, params.position
    invoked = params.context.trigger_kind == t.InlineCompletionTriggerKind.Invoked
    ls.outcomes.count(outcome)
    where = f"{PurePosixPath(uri).name}:{pos.line + 1}:{pos.character + 1}"
    facts = [f"{(time.perf_counter() - t0) * 1e3:.0f} ms"]
    if result is not None and not result.from_cache:
        facts.append(f"prompt {result.prompt_tokens} tokens, {result.reused_tokens} cached")
        if result.cold:
            facts.append("cut to fit the time budget")
        if result.candidate:
            facts.append(f"confidence {result.confidence:.2f}")
    log.info("completion %s%s: %s (%s)", where, " (asked)" if invoked else "", outcome.message, ", ".join(facts))
    if ls.settings.log_prompts and result is not None:
        tok = ls.host.model.tokenizer if ls.host.model is not None else None
        prompt = tok.decode(ls.pipeline.last_prompt) if tok is not None and not result.from_cache else ""
        log.info("completion %s prompt: %r; suggestion: %r", where, prompt[-2000:], result.candidate)
    if ls.loop is not None:
        note = outcome.to_json() | {"uri": uri, "line": pos.line, "character": pos.character, "invoked": invoked}
        ls.protocol.notify(OUTCOME_NOTIFICATION, note)


def _model_ready(ls: RyzansteinServer) -> bool:
    """Whether the completion model can answer now; one unloaded after idling starts loading again in the
    background (this request answers empty)."""
    if ls.host.ready:
        return True
    if ls.host.state == "idle" and ls.host.model is None and ls.loop is not None:
        ls.load_completion_model()
    return False


async def _generate(
    ls: RyzansteinServer, uri: str, text: str, offset: int, stop: threading.Event
) -> tuple[Completion | None, str]:
    """Runs the pipeline (and the larger tier when it should take over) on the completion thread; `stop` becomes
    the document's newest stop flag, and a newer request or a cancel sets it. (None, "") when superseded;
    (None, what went wrong) when it failed."""
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
        return await asyncio.get_running_loop().run_in_executor(ls.completion_pool, work), ""
    except asyncio.CancelledError:
        stop.set()  # $/cancelRequest: the worker stops within one token
        raise
    except Exception as exc:  # never take the editor down: log, tell the user once, answer empty
        ls.error_once("completion", f"Ryzanstein: completion failed ({exc})", traceback.format_exc())
        return None, type(exc).__name__
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
