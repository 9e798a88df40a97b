"""Documents: open, changed, saved and closed documents feed the completion pipeline's context ring (the recently
edited code a completion prompt draws on); a resting cursor starts a warm-up of its prompt. pygls keeps the open
documents, each a LineDocument (document_text.py: a line table edited in place, positions clamped as LSP says).

A document the client names but has not opened is read from disk by `read_unopened` only, whoever asks for it
(`document`, or any handler's `ls.workspace.get_text_document`: the workspace is a `ClientDocuments`): a regular
file inside a workspace folder (symbolic links resolved), at most `MAX_UNOPENED_BYTES`, UTF-8, read within
`READ_TIMEOUT_S`; never a device, a FIFO, a file outside the workspace, or one the index never reads because its
name says it holds secrets (`.env`, keys, credentials: index/files.py's SECRET_PATTERNS, by the name the client gave
and the one it resolves to). Anything else is an InvalidParams error that says why (pygls would read any path: a FIFO
hangs the server, /dev/zero fills its memory).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import TextDocument, Workspace

from pyserver.index.files import MAX_FILE_BYTES, is_secret
from pyserver.server.command_args import ArgumentError
from pyserver.server.document_text import LineDocument, chars, line_count
from pyserver.server.sidecar import RyzansteinServer

log = logging.getLogger("ryzanstein")

MAX_DOCUMENT_CHARS = 4_000_000  # larger documents get no completions (and never reach the model whole)
MAX_UNOPENED_BYTES = MAX_FILE_BYTES  # the index's cap: a larger file the client has not opened is not read
READ_TIMEOUT_S = 2.0
MAX_READS = 4  # reads at once (more when some hang past their timeout, on a hung file system, are refused)
CURSOR_REST = "ryzanstein/cursorRest"

_reads = threading.Semaphore(MAX_READS)


class DocumentRefused(JsonRpcInvalidParams):
    """A document the client has not opened and the server will not read (the message says why)."""


def document(ls: RyzansteinServer, uri: str) -> TextDocument:
    """The document at `uri`: the open one, else the file read by `read_unopened` (DocumentRefused if it may not
    be read)."""
    return text_document(ls.workspace, uri)


def text_document(workspace: Workspace, uri: str) -> TextDocument:
    """`document` for a workspace (what ClientDocuments.get_text_document answers)."""
    doc = workspace.text_documents.get(unquote(uri))
    if doc is not None:
        return doc
    source = read_unopened(uri, workspace_roots(workspace))
    return LineDocument(uri, source=source, position_codec=workspace.position_codec)


def workspace_roots(workspace: Workspace) -> list[Path]:
    """The workspace folders on disk (the root when the client named no folder)."""
    uris = [f.uri for f in workspace.folders.values()] or ([workspace.root_uri] if workspace.root_uri else [])
    return [p for p in map(fs_path, uris) if p is not None]


def open_document(ls: RyzansteinServer, uri: str) -> TextDocument | None:
    """The document at `uri` if the client has it open (never read from disk)."""
    return ls.workspace.text_documents.get(unquote(uri))


class ClientDocuments(Workspace):
    """pygls' workspace, except that its documents are LineDocuments and one the client has not opened is read by
    `read_unopened`."""

    @classmethod
    def like(cls, workspace: Workspace) -> ClientDocuments:
        """One with `workspace`'s root, folders and position encoding (made at initialize, before any document
        is open)."""
        return cls(
            workspace.root_uri,
            t.TextDocumentSyncKind.Incremental,
            list(workspace.folders.values()),
            workspace.position_encoding,
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out_of_sync: dict[str, str] = {}  # uri -> why the server lost track of its text (update_text_document)

    def _create_text_document(
        self, doc_uri: str, source: str | None = None, version: int | None = None, language_id: str | None = None
    ) -> TextDocument:
        return LineDocument(
            doc_uri, source, version, language_id, sync_kind=self._sync_kind, position_codec=self.position_codec
        )

    def get_text_document(self, doc_uri: str) -> TextDocument:
        why = self.out_of_sync.get(unquote(doc_uri))
        if why:
            raise DocumentRefused(f"{doc_uri}: an edit to it could not be applied ({why}); close and reopen it")
        return text_document(self, doc_uri)

    def update_text_document(
        self, text_doc: t.VersionedTextDocumentIdentifier, change: t.TextDocumentContentChangeEvent
    ) -> None:
        """pygls drops a change whose range ends before it starts and puts one past the last line at the end:
        either way the server's text would part from the editor's without a word. Such a change is refused
        instead, and the document is out of sync (refused by get_text_document) until the editor opens it again."""
        uri = unquote(text_doc.uri)
        doc = self.text_documents.get(uri)
        problem = _bad_change(doc, change) if doc is not None else None
        if problem:
            self.out_of_sync[uri] = problem
            log.warning("%s: change refused (%s); the document is out of sync until it is reopened", uri, problem)
            return
        super().update_text_document(text_doc, change)

    def put_text_document(self, text_document: t.TextDocumentItem, notebook_uri: str | None = None) -> None:
        self.out_of_sync.pop(unquote(text_document.uri), None)
        super().put_text_document(text_document, notebook_uri)


def _bad_change(doc: TextDocument, change: t.TextDocumentContentChangeEvent) -> str | None:
    """Why a change cannot be applied to the document as LSP defines it, or None. (A character past a line's end is
    allowed: LSP says it means the line's end.)"""
    if not isinstance(change, t.TextDocumentContentChangePartial):
        return None
    start, end = change.range.start, change.range.end
    if (end.line, end.character) < (start.line, start.character):
        return f"its range ends ({end.line}:{end.character}) before it starts ({start.line}:{start.character})"
    last = line_count(doc) - 1  # the last line's index (the empty line after a final line break counts)
    if end.line > last:
        return f"its range reaches line {end.line}, past the document's last line {last}"
    return None


def read_unopened(uri: str, roots: list[Path]) -> str:
    """The text of the file at `uri`, which the client has not opened, if it may be read (see the module's
    docstring); else DocumentRefused."""
    path = fs_path(uri)
    if path is None:
        raise DocumentRefused(f"{uri} is not open in the editor (and not a local file)")
    try:
        real = path.resolve(strict=True)
        inside = [r for r in roots if real.is_relative_to(r.resolve())]
        st = real.stat()
    except (OSError, RuntimeError) as exc:  # missing, unreadable, a symbolic link loop
        raise DocumentRefused(f"{uri} is not open in the editor and cannot be read: {_why(exc)}") from None
    if not inside:
        raise DocumentRefused(f"{uri} is not open in the editor and is outside the workspace folders")
    named = [path.relative_to(r) for r in roots if path.is_relative_to(r)]  # as the client wrote it
    if any(is_secret(rel.as_posix()) for rel in [*named, *(real.relative_to(r.resolve()) for r in inside)]):
        raise DocumentRefused(f"{uri} is not open in the editor and holds secrets by its name: it is never read")
    if not stat.S_ISREG(st.st_mode):
        raise DocumentRefused(f"{uri} is not open in the editor and is not a regular file")
    if st.st_size > MAX_UNOPENED_BYTES:
        raise DocumentRefused(f"{uri} is not open in the editor and is over {MAX_UNOPENED_BYTES} bytes")
    return _read_within_timeout(uri, real, st)


def line_of(doc: TextDocument, line: int) -> str:
    """Line `line` of the document (with its line break); InvalidParams past its last line (LSP counts the empty
    line after a final line break, so an empty document has one line)."""
    count = line_count(doc)
    if not 0 <= line < count:
        raise ArgumentError(f"line {line} is past the end of the document ({count} line{'s' if count > 1 else ''})")
    lines = doc.lines
    return lines[line] if line < len(lines) else ""


def fs_path(uri: str) -> Path | None:
    """The local path a file: URI names (percent-escapes decoded), or None."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost") or not parsed.path:
        return None
    return Path(url2pathname(parsed.path))


def _why(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _read_within_timeout(uri: str, path: Path, expected: os.stat_result) -> str:
    """The file's text, read on a daemon thread: one stuck in a hung file system is left behind, never waited
    for."""
    if not _reads.acquire(blocking=False):
        raise DocumentRefused(f"{uri} is not open in the editor, and {MAX_READS} reads of files are under way")
    result: list[str | DocumentRefused] = []

    def read() -> None:
        try:
            result.append(_read(uri, path, expected))
        except DocumentRefused as exc:
            result.append(exc)
        except OSError as exc:
            result.append(DocumentRefused(f"{uri} is not open in the editor and cannot be read: {_why(exc)}"))
        except UnicodeDecodeError:
            result.append(DocumentRefused(f"{uri} is not open in the editor and is not UTF-8 text"))
        finally:
            _reads.release()

    reader = threading.Thread(target=read, name="document-read", daemon=True)
    reader.start()
    reader.join(READ_TIMEOUT_S)
    if not result:
        raise DocumentRefused(f"{uri} is not open in the editor and could not be read within {READ_TIMEOUT_S:.0f} s")
    if isinstance(result[0], DocumentRefused):
        raise result[0]
    return result[0]


def _read(uri: str, path: Path, expected: os.stat_result) -> str:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)  # the file opened is the one checked, not one swapped in since
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
            raise DocumentRefused(f"{uri} is not open in the editor and changed while it was read")
        data = f.read(MAX_UNOPENED_BYTES + 1)
    if len(data) > MAX_UNOPENED_BYTES:
        raise DocumentRefused(f"{uri} is not open in the editor and is over {MAX_UNOPENED_BYTES} bytes")
    return data.decode("utf-8")


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
                doc = open_document(ls, uri)
                if doc is not None and chars(doc) <= MAX_DOCUMENT_CHARS:
                    ls.pipeline.ring.add(uri, doc.source, line)


def did_save(ls: RyzansteinServer, params: t.DidSaveTextDocumentParams) -> None:
    doc = open_document(ls, params.text_document.uri)
    if doc is not None and chars(doc) <= MAX_DOCUMENT_CHARS:
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
    doc = open_document(ls, uri)
    if not ls.settings.enable or not ls.host.ready or doc is None:
        return
    if chars(doc) > MAX_DOCUMENT_CHARS or not ls.settings.language_enabled(doc.language_id or ""):
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
