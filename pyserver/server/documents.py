"""Document sync: open, changed, saved and closed documents feed the completion pipeline's context ring (the
recently edited code a completion prompt draws on); a resting cursor starts a warm-up of its prompt. pygls keeps
the documents' text itself."""

from __future__ import annotations

from typing import Any

from lsprotocol import types as t

from pyserver.server.sidecar import RyzansteinServer

MAX_DOCUMENT_CHARS = 4_000_000  # larger documents get no completions (and never reach the model whole)
CURSOR_REST = "ryzanstein/cursorRest"


def did_open(ls: RyzansteinServer, params: t.DidOpenTextDocumentParams) -> None:
    if len(params.text_document.text) <= MAX_DOCUMENT_CHARS:
        ls.pipeline.ring.add(params.text_document.uri, params.text_document.text, 0)


def did_change(ls: RyzansteinServer, params: t.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    for change in params.content_changes:
        if isinstance(change, t.TextDocumentContentChangePartial):
            line = change.range.start.line
            if ls.last_line.get(uri) != line:  # re-chunk when the edit moves to another line, not per keystroke
                ls.last_line[uri] = line
                doc = ls.workspace.get_text_document(uri)
                if len(doc.source) <= MAX_DOCUMENT_CHARS:
                    ls.pipeline.ring.add(uri, doc.source, line)


def did_save(ls: RyzansteinServer, params: t.DidSaveTextDocumentParams) -> None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    if len(doc.source) <= MAX_DOCUMENT_CHARS:
        ls.pipeline.ring.add(doc.uri, doc.source, ls.last_line.get(doc.uri, 0))


def did_close(ls: RyzansteinServer, params: t.DidCloseTextDocumentParams) -> None:
    ls.last_line.pop(params.text_document.uri, None)


def cursor_rest(ls: RyzansteinServer, params: object) -> None:
    """`ryzanstein/cursorRest` {uri, position} (the extension, when the cursor stops): warm this position's
    prompt in the document's KV cache (warmup.py). A malformed notification gets nothing: notifications have no
    answer."""
    try:
        uri = str(_field(params, "uri"))
        pos = _field(params, "position")
        line, character = int(_field(pos, "line")), int(_field(pos, "character"))
    except (TypeError, ValueError, KeyError, AttributeError):
        return
    if not ls.settings.enable or not ls.host.ready or uri not in ls.workspace.text_documents:
        return
    doc = ls.workspace.get_text_document(uri)
    if len(doc.source) > MAX_DOCUMENT_CHARS or not ls.settings.language_enabled(doc.language_id or ""):
        return
    offset = doc.offset_at_position(t.Position(line=max(0, line), character=max(0, character)))
    ls.warmups.request(ls.host, ls.pipeline, uri, doc.source, offset)


def _field(obj: object, name: str) -> Any:
    """A field of a notification's params, whether pygls gives them as an object or a dict."""
    if isinstance(obj, dict):
        return obj[name]
    value = getattr(obj, name)
    if value is None:
        raise ValueError(name)
    return value
