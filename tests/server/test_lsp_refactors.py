"""The refactors over LSP with the shipped model, as the editor sees them: the capability gate, edits offered for
preview (needsConfirmation annotations) and refused when the document moved on, Write Tests creating or extending
the test file after running its candidates, and explanations streamed."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from pyserver.models import default_model_path
from tests.server.test_lsp import SETTINGS
from tests.support.lsp import command, start_in

WORKSPACE = Path(tempfile.mkdtemp(prefix="ryz-refactor-ws-"))
STORAGE = Path(tempfile.mkdtemp(prefix="ryz-refactor-storage-"))
GEOMETRY = (
    "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius * radius\n\n\n"
    "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"
)
(WORKSPACE / "geometry.py").write_text(GEOMETRY)
URI = (WORKSPACE / "geometry.py").as_uri()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"]))
async def client(lsp_client: LanguageClient) -> Any:
    lsp_client.edits = []  # type: ignore[attr-defined]
    lsp_client.answers = []  # type: ignore[attr-defined]  # what the "user" does in the preview, in turn
    lsp_client.streamed = []  # type: ignore[attr-defined]

    @lsp_client.feature(t.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: t.ApplyWorkspaceEditParams) -> t.ApplyWorkspaceEditResult:
        lsp_client.edits.append(params)  # type: ignore[attr-defined]
        answers = lsp_client.answers  # type: ignore[attr-defined]
        return t.ApplyWorkspaceEditResult(applied=answers.pop(0) if answers else True)

    @lsp_client.feature("ryzanstein/explanation")
    def explanation(params: Any) -> None:
        lsp_client.streamed.append(params)  # type: ignore[attr-defined]

    settings = {"modelPath": str(default_model_path()), "storagePath": str(STORAGE), "indexEnable": False}
    await start_in(lsp_client, WORKSPACE, {**SETTINGS, **settings})
    for _ in range(200):
        if (await command(lsp_client, "status"))["state"] == "ready":
            break
        await asyncio.sleep(0.05)
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, text: str, version: int = 1, uri: str = URI) -> None:
    client.text_document_did_open(
        t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )


def at(line: int, **extra: Any) -> dict[str, Any]:
    pos = {"line": line, "character": 4}
    return {"uri": URI, "position": pos, "range": {"start": pos, "end": {"line": line + 1, "character": 0}}, **extra}


@pytest.mark.asyncio
async def test_weak_model_is_gated_and_nothing_is_sent(client: LanguageClient) -> None:
    open_doc(client, GEOMETRY)
    for name in ("docstring", "explain"):
        result = await command(client, name, at(4))
        assert result["gated"] is True and result["applied"] is False
        assert "too small" in result["reason"] and "bench refactors" in result["reason"]
    assert client.edits == []  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_cheap_checks_come_before_the_gate_and_every_refactor_is_gated(client: LanguageClient) -> None:
    """Nothing to do at the cursor is said before the model is said to be too small; then every refactor kind
    (docstring, explain, rewrite, tests) is gated for the shipped model, as bench refactors measured it."""
    open_doc(client, GEOMETRY)
    blank = {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 0}}
    for name, args, why in (
        ("docstring", at(0), "no function at the cursor"),
        ("docstring", {**at(4), "mode": "update"}, "has no docstring to update"),
        ("writeTests", at(0), "no function at the cursor"),
        ("rewrite", {"uri": URI, "range": blank, "instruction": "x"}, "select the code"),
        ("explain", {"uri": URI, "range": blank}, "select the code"),
    ):
        result = await command(client, name, args)
        assert result.get("gated") is not True and why in result["reason"], (name, result)
    for name, args in (
        ("docstring", at(4)),
        ("explain", at(3)),
        ("rewrite", at(3, instruction="use math.pow")),
        ("writeTests", at(4)),
    ):
        result = await command(client, name, args)
        assert result["gated"] is True and "bench refactors" in result["reason"], (name, result)
    assert client.edits == []  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_preview_document_is_refused_in_one_line(client: LanguageClient) -> None:
    """A command run with the cursor in a proposal (a virtual document of the extension's): refused with a reason
    that names no internal URI, not an error."""
    uri = "ryzanstein-proposal:/1/geometry.py"
    result = await command(client, "docstring", {"uri": uri, "position": {"line": 4, "character": 4}})
    assert result["applied"] is False and result["refused"] is True
    assert "ryzanstein-proposal" not in result["reason"] and "preview" in result["reason"]


@pytest.mark.asyncio
async def test_docstring_is_offered_for_preview_and_can_be_discarded(client: LanguageClient) -> None:
    open_doc(client, GEOMETRY, version=3)
    client.answers = [True, False]  # type: ignore[attr-defined]  # accepted, then discarded
    first = await command(client, "docstring", at(4, force=True))
    if first["applied"] is False:  # the model's docstring failed verification: nothing was offered
        assert client.edits == [] and "the model" in first["reason"]  # type: ignore[attr-defined]
        return
    (params,) = client.edits  # type: ignore[attr-defined]
    note = params.edit.change_annotations["ryzanstein"]
    assert note.needs_confirmation is True and note.label == "Ryzanstein: Add docstring"
    (change,) = params.edit.document_changes
    assert change.text_document.version == 3
    (edit,) = change.edits
    assert isinstance(edit, t.AnnotatedTextEdit) and edit.annotation_id == "ryzanstein"
    assert edit.range.start.line == 4 and edit.new_text.startswith('    """')
    second = await command(client, "docstring", at(4, force=True))
    assert second["applied"] is False and "discarded" in second["reason"]


@pytest.mark.asyncio
async def test_an_edit_on_a_reopened_document_is_refused(client: LanguageClient) -> None:
    """Closed and reopened with other text, the document is at version 1 again: the content hash tells."""
    open_doc(client, GEOMETRY, version=1)
    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"ryzanstein": {"refactorMaxTokens": 1500}})
    )
    cmd = asyncio.ensure_future(command(client, "docstring", at(4, force=True)))
    await asyncio.sleep(0)  # the command goes out first; the reopen lands while it computes
    client.text_document_did_close(t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=URI)))
    open_doc(client, "# another text\n" + GEOMETRY, version=1)
    result = await cmd
    assert result["applied"] is False
    assert "changed" in result["reason"] or "the model" in result["reason"]  # (or it failed verification)
    assert client.edits == []  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_write_tests_creates_then_extends_the_test_file(client: LanguageClient) -> None:
    open_doc(client, GEOMETRY)
    result = await command(client, "writeTests", at(4, force=True))
    if result["applied"] is False:  # no candidate had a test that passes: nothing offered
        assert result["reason"].startswith("no usable tests") and client.edits == []  # type: ignore[attr-defined]
        return
    (params,) = client.edits  # type: ignore[attr-defined]
    create, insert = params.edit.document_changes
    target = (WORKSPACE / "test_geometry.py").as_uri()
    assert isinstance(create, t.CreateFile) and create.uri == target and create.annotation_id == "ryzanstein"
    assert create.options.overwrite is False and create.options.ignore_if_exists is False
    assert params.edit.change_annotations["ryzanstein"].needs_confirmation
    new_text = insert.edits[0].new_text
    assert new_text.startswith("from geometry import circle_area\n") and result["uri"] == target
    assert result["report"].startswith("test_geometry.py: ") and " test" in result["report"]

    old = "def test_existing():\n    assert True\n"
    (WORKSPACE / "test_geometry.py").write_text(old)  # the user kept a test file already
    client.edits.clear()  # type: ignore[attr-defined]
    result = await command(client, "writeTests", at(4, force=True))
    if result["applied"] is False:  # (this time none of the candidates' new tests passed)
        assert result["reason"].startswith("no usable tests") and client.edits == []  # type: ignore[attr-defined]
        (WORKSPACE / "test_geometry.py").unlink()
        return
    (params,) = client.edits  # type: ignore[attr-defined]
    (change,) = params.edit.document_changes
    assert change.text_document.uri == target and change.text_document.version is None
    (edit,) = change.edits
    assert (edit.range.start.line, edit.range.start.character) == (1, 15)  # after its text: nothing replaced
    assert edit.new_text.startswith("\n\n\nfrom geometry import circle_area\n")
    (WORKSPACE / "test_geometry.py").unlink()


@pytest.mark.asyncio
async def test_explanation_is_streamed(client: LanguageClient) -> None:
    open_doc(client, GEOMETRY)
    result = await command(client, "explain", at(3, force=True, stream="tok-1"))
    streamed = client.streamed  # type: ignore[attr-defined]
    assert streamed and all(p.token == "tok-1" for p in streamed)
    final = result.get("text")
    if final is not None:
        assert all(final.startswith(p.text.rstrip()) for p in streamed)
    else:  # refused as junk after streaming: the reason says why
        assert result["applied"] is False and result["reason"]


@pytest.mark.asyncio
async def test_a_configured_remote_server_writes_the_explanation(client: LanguageClient) -> None:
    """remoteUrl set: the explanation is the llama.cpp server's (no gate: the user chose a larger engine); the
    server stopped, the next one comes from the local model and the status says the remote is down."""
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    from pyserver.refactor.explain import HEADER, prose
    from pyserver.tiers.remote import RemoteConfig, RemoteEngine
    from tests.tiers.test_remote import free_port, start_llama_server

    port = free_port()
    proc = start_llama_server(port)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        client.workspace_did_change_configuration(
            t.DidChangeConfigurationParams(settings={"ryzanstein": {"remoteUrl": url, "refactorMaxTokens": 64}})
        )
        open_doc(client, GEOMETRY)
        selection = GEOMETRY.split("\n", 3)[3].split("\n\n\n")[0]  # circle_area, lines 3-4
        rng = {"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}}
        result = await command(client, "explain", {"uri": URI, "range": rng})
        direct = RemoteEngine(RemoteConfig(url)).complete(
            selection.rstrip() + HEADER, None, 32, ["\n\n"], lambda: False
        )
        assert direct is not None
        assert result.get("text", result.get("reason")) == prose(direct) or "the model" in result.get("reason", "")
        status = await command(client, "status")
        assert status["larger_tier"]["remote"]["url"] == url and status["larger_tier"]["remote"]["down"] is False
    finally:
        proc.terminate()
        proc.wait(10)
    result = await command(client, "explain", {"uri": URI, "range": rng, "force": True})
    assert "text" in result or result["applied"] is False  # the local model answered (or its text was refused)
    status = await command(client, "status")
    assert status["larger_tier"]["remote"]["down"] is True and status["larger_tier"]["remote"]["error"]


@pytest.mark.asyncio
async def test_with_preview_the_edit_comes_back_for_the_client_to_show(client: LanguageClient) -> None:
    """VS Code's extension asks for `preview`: nothing is sent to apply; the answer holds the edit (without change
    annotations, which would make VS Code preview it again) and the file's proposed text."""
    open_doc(client, GEOMETRY)
    result = await command(client, "writeTests", at(4, preview=True, force=True))
    if result["applied"] is False and "preview" not in result:
        assert result["reason"].startswith("no usable tests")
        return
    assert client.edits == []  # type: ignore[attr-defined]
    proposal = result["preview"]
    assert proposal["uri"] == (WORKSPACE / "test_geometry.py").as_uri() and proposal["exists"] is False
    assert proposal["text"].startswith("from geometry import circle_area\n")
    assert result["label"] == "Ryzanstein: Create test_geometry.py" and result["report"].startswith("test_geometry.py")
    create, insert = proposal["edit"]["documentChanges"]
    assert create["kind"] == "create" and insert["edits"][0]["newText"] == proposal["text"]
    assert "annotationId" not in str(proposal["edit"]) and "changeAnnotations" not in proposal["edit"]
    assert not (WORKSPACE / "test_geometry.py").exists()
