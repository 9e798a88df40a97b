"""How a refactor's edit reaches the editor: a WorkspaceEdit whose changes carry a change annotation with
`needsConfirmation`, so VS Code shows it in its Refactor Preview (a diff with Apply and Discard) and writes nothing
until the user applies it. Before it is sent, the edit is checked against the text it was computed on: the
document's version and a hash of its content (a document closed and reopened starts again at version 1), and for
a file the editor does not have open, the file on disk."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as t
from pygls.workspace import Workspace

from pyserver.server.documents import fs_path, read_unopened, workspace_roots

ANNOTATION = "ryzanstein"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A document's text as an edit was computed on it: `version` None for a file not open in the editor (its
    text then came from disk), `text` None for a file that does not exist."""

    uri: str
    version: int | None
    text: str | None

    @property
    def digest(self) -> str | None:
        return None if self.text is None else digest(self.text)


def snapshot(workspace: Workspace, uri: str) -> Snapshot:
    """The document as the editor has it open, else the file on disk (read as documents.read_unopened reads:
    inside the workspace, regular, under the cap, with a timeout), text None when it does not exist."""
    doc = workspace.text_documents.get(unquote(uri))
    if doc is not None:
        return Snapshot(uri, doc.version, doc.source)
    path = fs_path(uri)
    if path is None:
        raise ValueError(f"cannot read {uri}: not a file")
    if not os.path.lexists(path):
        return Snapshot(uri, None, None)
    return Snapshot(uri, None, read_unopened(uri, workspace_roots(workspace)))


def moved_on(workspace: Workspace, before: Snapshot) -> str | None:
    """Why an edit computed on `before` may no longer be applied, or None."""
    now = snapshot(workspace, before.uri)
    name = Path(urlparse(before.uri).path).name
    if before.version is not None and now.version != before.version:
        return f"the document changed (version {before.version} -> {now.version})"
    if now.digest != before.digest:
        return f"{name} changed since the refactor started" if before.text is not None else f"{name} appeared"
    return None


def annotated(label: str, description: str) -> dict[str, t.ChangeAnnotation]:
    return {ANNOTATION: t.ChangeAnnotation(label=label, needs_confirmation=True, description=description)}


def replace(before: Snapshot, start: int, end: int, new_text: str, positions: Any) -> t.TextDocumentEdit:
    """An annotated edit of before.text[start:end]; `positions(offset) -> Position` in the editor's encoding."""
    rng = t.Range(start=positions(start), end=positions(end))
    return t.TextDocumentEdit(
        text_document=t.OptionalVersionedTextDocumentIdentifier(uri=before.uri, version=before.version),
        edits=[t.AnnotatedTextEdit(range=rng, new_text=new_text, annotation_id=ANNOTATION)],
    )


def new_or_extended_file(before: Snapshot, text: str, positions: Any) -> list[Any]:
    """Changes that make the file at before.uri hold `text`: created when it does not exist (failing if it
    appears meanwhile), else only the part after its current text (which `text` must begin with, up to trailing
    newlines) replaced, so nothing the file held is lost."""
    if before.text is None:
        start = t.Position(line=0, character=0)
        return [
            t.CreateFile(
                uri=before.uri,
                options=t.CreateFileOptions(overwrite=False, ignore_if_exists=False),
                annotation_id=ANNOTATION,
            ),
            t.TextDocumentEdit(
                text_document=t.OptionalVersionedTextDocumentIdentifier(uri=before.uri, version=None),
                edits=[
                    t.AnnotatedTextEdit(range=t.Range(start=start, end=start), new_text=text, annotation_id=ANNOTATION)
                ],
            ),
        ]
    keep = len(before.text.rstrip("\n"))
    if text[:keep] != before.text[:keep]:
        raise ValueError("the new text does not extend the file")
    return [replace(before, keep, len(before.text), text[keep:], positions)]


def end_positions(text: str) -> Any:
    """Offset -> Position in the text as it was (UTF-16 columns: what VS Code counts)."""

    def at(offset: int) -> t.Position:
        head = text[:offset]
        line = head.count("\n")
        col = head[head.rfind("\n") + 1 :]
        return t.Position(line=line, character=len(col.encode("utf-16-le", "surrogatepass")) // 2)

    return at


def without_annotations(edit: Any) -> Any:
    """An unstructured WorkspaceEdit with its change annotations taken out: the client that previews it itself
    applies it as it is (VS Code would otherwise open its own preview again, with the changes unticked)."""
    if isinstance(edit, dict):
        return {k: without_annotations(v) for k, v in edit.items() if k not in ("annotationId", "changeAnnotations")}
    if isinstance(edit, list):
        return [without_annotations(v) for v in edit]
    return edit
