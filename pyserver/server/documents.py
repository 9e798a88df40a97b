"""Document sync: open, changed, saved and closed documents feed the completion pipeline's context ring (the
recently edited code a completion prompt draws on). pygls keeps the documents' text itself."""

from __future__ import annotations

from lsprotocol import types as t

from pyserver.server.sidecar import RyzansteinServer

MAX_DOCUMENT_CHARS = 4_000_000  # larger documents get no completions (and never reach the model whole)


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
