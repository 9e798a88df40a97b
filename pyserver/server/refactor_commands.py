"""The palette refactors as sidecar commands: explain, docstring, rewrite, writeTests.

Each runs on the refactor thread (the larger tier writes when there is one, else the completion model) with a
cancellable progress notification. An edit is computed on the document as it is when the command starts and sent
with that version; the sidecar refuses it itself if the document moved on meanwhile. Results: {"text"} (explain),
{"applied", "reason"?} (the edits), {"cancelled": true} when the user cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from lsprotocol import types as t

from pyserver.completion.prompt import context_block
from pyserver.engine import Session
from pyserver.refactor import NewFile, TextEdit
from pyserver.refactor.docstring import MODES, docstring_edit
from pyserver.refactor.explain import explain, explanation_problem
from pyserver.refactor.rewrite import rewrite_edit
from pyserver.refactor.write_tests import new_tests_file
from pyserver.server.command_args import (
    ArgumentError,
    DocstringArgs,
    ExplainArgs,
    RewriteArgs,
    WriteTestsArgs,
    parse,
)
from pyserver.server.progress import begin_progress
from pyserver.server.sidecar import RyzansteinServer

R = TypeVar("R")
ShouldStop = Callable[[], bool]
# make(session, document text, should_stop, workspace context) -> an edit, a reason there is none, or None (stopped)
MakeEdit = Callable[[Session, str, ShouldStop, str], TextEdit | NewFile | str | None]


async def cmd_explain(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(ExplainArgs, args)
    doc = ls.workspace.get_text_document(a.uri)
    start, end = doc.offset_at_position(a.range.start), doc.offset_at_position(a.range.end)
    selection = doc.source[start:end] or doc.lines[a.range.start.line]
    context = _workspace_context(ls, a.uri, selection)
    text = await _run_refactor(
        ls,
        "Ryzanstein: explaining",
        lambda stop, session: explain(session, selection, ls.settings.refactor_max_tokens // 2, stop, context),
    )
    if text is None:
        return {"cancelled": True}
    problem = explanation_problem(text)
    return {"applied": False, "reason": problem} if problem else {"text": text}


async def cmd_docstring(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(DocstringArgs, args)
    if a.mode not in MODES:
        raise ArgumentError(f"'mode' must be one of {', '.join(MODES)}, got {a.mode!r}")
    line, n = a.position.line + 1, ls.settings.refactor_max_tokens // 2
    return await _edit_command(
        ls,
        a.uri,
        a.position.line,
        "Ryzanstein: writing a docstring",
        lambda session, text, stop, ctx: docstring_edit(session, text, line, n, stop, ctx, a.mode),
    )


async def cmd_rewrite(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(RewriteArgs, args)
    doc = ls.workspace.get_text_document(a.uri)
    start, end = doc.offset_at_position(a.range.start), doc.offset_at_position(a.range.end)
    n = ls.settings.refactor_max_tokens
    around = (a.position or a.range.start).line
    python = (doc.language_id or "python") == "python"
    return await _edit_command(
        ls,
        a.uri,
        around,
        "Ryzanstein: rewriting",
        lambda session, text, stop, ctx: rewrite_edit(session, text, start, end, a.instruction, n, stop, ctx, python),
    )


async def cmd_write_tests(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(WriteTestsArgs, args)
    line, n = a.position.line + 1, ls.settings.refactor_max_tokens
    name = Path(unquote(urlparse(a.uri).path)).name or "module.py"
    return await _edit_command(
        ls,
        a.uri,
        a.position.line,
        "Ryzanstein: writing tests",
        lambda session, text, stop, ctx: new_tests_file(session, text, line, name, n, stop, ctx),
    )


def _workspace_context(ls: RyzansteinServer, uri: str, code: str) -> str:
    """Definitions (from the workspace index) of what the code uses, for a refactor's prompt."""
    path = unquote(urlparse(uri).path) if uri.startswith("file:") else None
    hits = ls.index.completion_context(path, code, ls.settings.context_chars)
    return "".join(context_block(h.chunk.path, h.chunk.text) for h in hits)


async def _edit_command(ls: RyzansteinServer, uri: str, line: int, title: str, make: MakeEdit) -> dict[str, Any]:
    """Runs `make` on the document as it is now, then applies the edit against that version. The workspace context
    is what the code around `line` uses."""
    doc = ls.workspace.get_text_document(uri)
    version, text = doc.version, doc.source
    around = "\n".join(doc.lines[max(0, line - 5) : line + 25])
    edit = await _run_refactor(
        ls, title, lambda stop, session: make(session, text, stop, _workspace_context(ls, uri, around))
    )
    if edit is None:
        return {"cancelled": True}
    if isinstance(edit, str):
        return {"applied": False, "reason": edit}
    return await _apply(ls, uri, version, edit)


async def _run_refactor(ls: RyzansteinServer, title: str, job: Callable[[ShouldStop, Session], R]) -> R:
    """Runs job(should_stop, session) on the refactor thread with work-done progress; the user can cancel from the
    progress notification."""
    if not ls.host.ready:
        raise ValueError(f"the model is not ready ({ls.host.state})")
    progress = await begin_progress(ls, title)
    stop = progress.cancelled
    ls.host.state = "busy"
    ls.send_status()

    def run() -> R:
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
        progress.end("cancelled" if stop.is_set() else "done")


async def _apply(ls: RyzansteinServer, uri: str, version: int | None, edit: TextEdit | NewFile) -> dict[str, Any]:
    """Sends the edit with the document version it was computed on; refuses it here if the document moved on."""
    doc = ls.workspace.get_text_document(uri)
    if isinstance(edit, TextEdit):
        if doc.version != version:
            return {"applied": False, "reason": f"the document changed (version {version} -> {doc.version})"}
        rng = t.Range(start=doc.client_position_at_offset(edit.start), end=doc.client_position_at_offset(edit.end))
        changes: list[Any] = [
            t.TextDocumentEdit(
                text_document=t.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
                edits=[t.TextEdit(range=rng, new_text=edit.new_text)],
            )
        ]
    else:
        target = uri.rsplit("/", 1)[0] + "/" + edit.name
        start = t.Position(line=0, character=0)
        changes = [
            t.CreateFile(uri=target, options=t.CreateFileOptions(ignore_if_exists=True)),
            t.TextDocumentEdit(
                text_document=t.OptionalVersionedTextDocumentIdentifier(uri=target, version=None),
                edits=[t.TextEdit(range=t.Range(start=start, end=start), new_text=edit.text)],
            ),
        ]
    result = await ls.workspace_apply_edit_async(
        t.ApplyWorkspaceEditParams(edit=t.WorkspaceEdit(document_changes=changes), label="Ryzanstein")
    )
    out: dict[str, Any] = {"applied": bool(result.applied)}
    if not result.applied:
        out["reason"] = result.failure_reason or "the editor refused the edit"
    elif isinstance(edit, NewFile):
        out["uri"] = target  # the editor opens it
    return out
