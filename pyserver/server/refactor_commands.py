"""The palette refactors as sidecar commands: explain, docstring, rewrite, writeTests.

Each runs on the refactor thread (the larger tier writes when there is one, else the completion model) with a
cancellable progress notification. An edit is computed on the document as it is when the command starts and sent
with that version; the sidecar refuses it itself if the document moved on meanwhile. Results: {"text"} (explain),
{"applied", "reason"?} (the edits), {"cancelled": true} when the user cancelled.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from lsprotocol import types as t
from lsprotocol.converters import get_converter

from pyserver.completion.prompt import context_block
from pyserver.index.files import language_of
from pyserver.refactor import TextEdit
from pyserver.refactor.common import function_at
from pyserver.refactor.docstring import MODES, docstring_edit, docstring_precheck
from pyserver.refactor.explain import explain, explanation_problem
from pyserver.refactor.imports import module_import
from pyserver.refactor.rewrite import rewrite_edit
from pyserver.refactor.sandbox import run_tests
from pyserver.refactor.write_tests import write_tests
from pyserver.refactor.writer import Writer
from pyserver.server.command_args import (
    ArgumentError,
    DocstringArgs,
    ExplainArgs,
    RewriteArgs,
    WriteTestsArgs,
    parse,
)
from pyserver.server.documents import fs_path, line_of
from pyserver.server.edits import (
    Snapshot,
    annotated,
    end_positions,
    moved_on,
    new_or_extended_file,
    replace,
    snapshot,
    without_annotations,
)
from pyserver.server.progress import begin_progress
from pyserver.server.sidecar import RyzansteinServer
from pyserver.tiers.capability import weakness

log = logging.getLogger("ryzanstein")

EXPLANATION_NOTIFICATION = "ryzanstein/explanation"
R = TypeVar("R")
ShouldStop = Callable[[], bool]
# make(writer, document text, should_stop, workspace context) -> an edit, a reason there is none, or None (stopped)
MakeEdit = Callable[[Writer, str, ShouldStop, str], TextEdit | str | None]


class Refused(Exception):
    """An expected refusal (no document to work on, the model not ready): answered as {"applied": false, "reason"}
    and logged in one line, never as an error with a traceback."""


Command = Callable[..., Awaitable[dict[str, Any]]]


def refusing(cmd: Command) -> Command:
    @functools.wraps(cmd)
    async def run(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
        try:
            return await cmd(ls, *args)
        except Refused as exc:  # (a file the sidecar may not read stays an InvalidParams error: documents.py)
            log.info("%s refused: %s", cmd.__name__.removeprefix("cmd_"), exc)
            return {"applied": False, "reason": str(exc), "refused": True}

    return run


def _document_text(ls: RyzansteinServer, uri: str) -> Any:
    """The document a refactor works on: a file (or an untitled one) the editor has, never a virtual document such
    as a preview of a proposed change."""
    if not uri.startswith(("file:", "untitled:")):
        raise Refused("this is not a file Ryzanstein can work on (a preview or another virtual document)")
    return ls.workspace.get_text_document(uri)


def _gated(ls: RyzansteinServer, task: str, force: bool) -> dict[str, Any] | None:
    """The refusal when the model that would write this is measured too weak for it (capability.py)."""
    if force or ls.tiers.remote_serves:  # (a remote engine is the user's choice of a larger model)
        return None
    why = weakness(ls.tiers.path or ls.host.model_path, task)
    return {"applied": False, "reason": why, "gated": True} if why else None


@refusing
async def cmd_explain(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(ExplainArgs, args)
    doc = _document_text(ls, a.uri)
    start, end = doc.offset_at_position(a.range.start), doc.offset_at_position(a.range.end)
    selection = doc.source[start:end] or line_of(doc, a.range.start.line)  # (past the end: a clear refusal)
    if not selection.strip():  # the cheap checks first, then the gate
        return {"applied": False, "reason": "select the code to explain"}
    gated = _gated(ls, "explain", a.force)
    if gated:
        return gated
    context = _workspace_context(ls, a.uri, selection)
    on_text = _streamer(ls, a.stream) if a.stream else None
    text = await _run_refactor(
        ls,
        "Ryzanstein: explaining",
        lambda stop, writer: explain(writer, selection, ls.settings.refactor_max_tokens // 2, stop, context, on_text),
    )
    if text is None:
        return {"cancelled": True}
    problem = explanation_problem(text)
    return {"applied": False, "reason": problem} if problem else {"text": text}


def _streamer(ls: RyzansteinServer, token: str, every_s: float = 0.1) -> Callable[[str], None]:
    """Sends the text so far as `ryzanstein/explanation` {token, text}, at most every `every_s` seconds (the
    command's result carries the final text)."""
    last = [0.0]
    loop = ls.loop

    def send(text: str) -> None:
        now = time.monotonic()
        if loop is not None and now - last[0] >= every_s:
            last[0] = now
            loop.call_soon_threadsafe(ls.protocol.notify, EXPLANATION_NOTIFICATION, {"token": token, "text": text})

    return send


@refusing
async def cmd_docstring(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(DocstringArgs, args)
    if a.mode not in MODES:
        raise ArgumentError(f"'mode' must be one of {', '.join(MODES)}, got {a.mode!r}")
    problem = docstring_precheck(_document_text(ls, a.uri).source, a.position.line + 1, a.mode)
    if problem:  # the cheap checks first, then the gate
        return {"applied": False, "reason": problem}
    gated = _gated(ls, "docstring", a.force)
    if gated:
        return gated
    line, n = a.position.line + 1, ls.settings.refactor_max_tokens // 2
    return await _edit_command(
        ls,
        a.uri,
        a.position.line,
        "Ryzanstein: writing a docstring",
        "Add docstring" if a.mode == "add" else "Update docstring",
        lambda writer, text, stop, ctx: docstring_edit(writer, text, line, n, stop, ctx, a.mode),
        a.preview,
    )


@refusing
async def cmd_rewrite(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(RewriteArgs, args)
    doc = _document_text(ls, a.uri)
    start, end = doc.offset_at_position(a.range.start), doc.offset_at_position(a.range.end)
    if start >= end or not doc.source[start:end].strip():  # the cheap checks first, then the gate
        return {"applied": False, "reason": "select the code to rewrite"}
    gated = _gated(ls, "rewrite", a.force)
    if gated:
        return gated
    n = ls.settings.refactor_max_tokens
    around = (a.position or a.range.start).line
    language = language_of(unquote(urlparse(a.uri).path)) or (doc.language_id or None)
    return await _edit_command(
        ls,
        a.uri,
        around,
        "Ryzanstein: rewriting",
        f"Rewrite: {a.instruction[:60]}",
        lambda writer, text, stop, ctx: rewrite_edit(writer, text, start, end, a.instruction, n, stop, ctx, language),
        a.preview,
    )


@refusing
async def cmd_write_tests(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    """Best-of-n tests run in a sandbox (write_tests.py); the kept file is offered as a preview: a new
    test_<module>.py, or the tests appended to the existing one."""
    a = parse(WriteTestsArgs, args)
    line, n = a.position.line + 1, ls.settings.refactor_max_tokens
    doc = _document_text(ls, a.uri)
    module = fs_path(a.uri)
    text = doc.source
    if module is None or module.suffix != ".py":  # the cheap checks first, then the gate
        return {"applied": False, "reason": "Write Tests needs a Python file saved on disk"}
    if function_at(text, line) is None:
        return {"applied": False, "reason": "no function at the cursor (or the file does not parse)"}
    gated = _gated(ls, "tests", a.force)
    if gated:
        return gated
    where = module_import(module)
    target = snapshot(ls.workspace, where.test_file.as_uri())
    workspace = _folder_of(ls, module)
    runner = partial(
        run_tests,
        workspace,
        module,
        text,
        where.test_file.name,
        test_dir=where.test_file.parent,
        import_root=where.root,
    )
    context = _workspace_context(ls, a.uri, "".join(doc.lines[max(0, line - 5) : line + 25]))  # lines keep breaks
    result = await _run_refactor(
        ls,
        "Ryzanstein: writing and running tests",
        lambda stop, writer: write_tests(
            writer, text, line, module.name, n, stop, runner, context, target.text, import_path=where.dotted
        ),
    )
    if result is None:
        return {"cancelled": True}
    if isinstance(result, str):
        return {"applied": False, "reason": result}
    changes = new_or_extended_file(target, result.file.text, end_positions(target.text or ""))
    verb = "Add tests to" if result.appended else "Create"
    label = f"{verb} {result.file.name}"
    out = await _apply(ls, target, changes, label, result.report(), result.file.text, a.preview, open_after=True)
    out["report"] = result.report()
    return out


def _folder_of(ls: RyzansteinServer, path: Path) -> Path:
    """The workspace folder holding path (the sandbox copies it), else the file's own folder."""
    for root in ls.index_roots:
        if path.is_relative_to(root):
            return root
    return path.parent


def _workspace_context(ls: RyzansteinServer, uri: str, code: str) -> str:
    """Definitions (from the workspace index) of what the code uses, for a refactor's prompt."""
    path = unquote(urlparse(uri).path) if uri.startswith("file:") else None
    hits = ls.index.completion_context(path, code, ls.settings.context_chars)
    return "".join(context_block(h.chunk.path, h.chunk.text) for h in hits)


async def _edit_command(
    ls: RyzansteinServer, uri: str, line: int, title: str, label: str, make: MakeEdit, preview: bool = False
) -> dict[str, Any]:
    """Runs `make` on the document as it is now, then offers the edit for preview if the document has not moved
    on. The workspace context is what the code around `line` uses."""
    doc = ls.workspace.get_text_document(uri)
    before_text = doc.source  # (the document object changes as the user types on)
    before = Snapshot(uri, doc.version, before_text)
    around = "".join(doc.lines[max(0, line - 5) : line + 25])  # (lines keep their breaks)
    edit = await _run_refactor(
        ls, title, lambda stop, writer: make(writer, before_text, stop, _workspace_context(ls, uri, around))
    )
    if edit is None:
        return {"cancelled": True}
    if isinstance(edit, str):
        return {"applied": False, "reason": edit}
    changes = [replace(before, edit.start, edit.end, edit.new_text, end_positions(before_text))]
    proposed = before_text[: edit.start] + edit.new_text + before_text[edit.end :]
    return await _apply(ls, before, changes, label, Path(urlparse(uri).path).name, proposed, preview)


async def _run_refactor(ls: RyzansteinServer, title: str, job: Callable[[ShouldStop, Writer], R]) -> R:
    """Runs job(should_stop, writer) on the refactor thread with work-done progress; the user can cancel from the
    progress notification."""
    if not ls.host.ready:
        raise Refused(f"the model is not ready yet ({ls.host.state}); try again in a moment")
    progress = await begin_progress(ls, title)
    stop = progress.cancelled
    ls.host.state = "busy"
    ls.send_status()

    def run() -> R:
        # The remote tier when configured and up; else the larger local tier (loaded now if needed); else the
        # completion model.
        with ls.tiers.refactor_writer(ls.settings, ls.host, ls.host.refactor_session) as writer:
            return job(stop.is_set, writer)

    try:
        return await asyncio.get_running_loop().run_in_executor(ls.refactor_pool, run)
    except asyncio.CancelledError:
        stop.set()
        raise
    finally:
        ls.host.state = "ready" if ls.host.model is not None else ls.host.state
        ls.send_status()
        progress.end("cancelled" if stop.is_set() else "done")


async def _apply(
    ls: RyzansteinServer,
    before: Snapshot,
    changes: list[Any],
    label: str,
    description: str,
    proposed: str,
    preview: bool,
    open_after: bool = False,
) -> dict[str, Any]:
    """Unless the document the changes were computed on moved on meanwhile: with `preview`, answers with the edit
    and the file's proposed text for the client to show and apply; else sends the edit for the editor to preview
    (needsConfirmation annotations: the editor applies it only when the user accepts)."""
    problem = moved_on(ls.workspace, before)
    if problem:
        return {"applied": False, "reason": problem}
    edit = t.WorkspaceEdit(document_changes=changes, change_annotations=annotated(f"Ryzanstein: {label}", description))
    if preview:
        return {
            "applied": False,
            "preview": {
                "edit": without_annotations(get_converter().unstructure(edit)),
                "uri": before.uri,
                "text": proposed,
                "exists": before.text is not None,
            },
            "label": f"Ryzanstein: {label}",
        }
    result = await ls.workspace_apply_edit_async(t.ApplyWorkspaceEditParams(edit=edit, label=f"Ryzanstein: {label}"))
    out: dict[str, Any] = {"applied": bool(result.applied)}
    if not result.applied:
        out["reason"] = result.failure_reason or "not applied (discarded in the preview, or refused by the editor)"
    elif open_after:
        out["uri"] = before.uri  # the extension shows it
    return out
