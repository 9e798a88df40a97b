"""Documents the client names but has not opened: read only when they are regular files inside a workspace folder,
under the size cap, in time; anything else is a clear InvalidParams error (pygls read any path: a FIFO hung the
server, /dev/zero grew it past 1.5 GB, `explain` could send any file on the machine)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from pyserver.server import documents
from pyserver.server.documents import MAX_UNOPENED_BYTES, DocumentRefused, read_unopened
from tests.server.stdio_server import StdioServer

INVALID_PARAMS = -32602
needs_posix = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, /dev/zero and symbolic links")
on_module_loop = pytest.mark.asyncio(loop_scope="module")  # the one server of the module lives on this loop


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("documents")
    ws, outside = root / "ws", root / "outside"
    ws.mkdir()
    outside.mkdir()
    (ws / "ok.py").write_text("def area(w, h):\n    return w * h\n")
    (ws / "with space.py").write_text("x = 1\n")
    (ws / "big.py").write_text("x = 1\n" * (MAX_UNOPENED_BYTES // 6 + 10))
    (ws / "latin1.py").write_bytes(b"name = '\xe9t\xe9'\n")
    (outside / "secret.py").write_text("TOKEN = 'not for the model'\n")
    (ws / ".env").write_text("API_TOKEN=not-for-the-model\n")
    (ws / "keys").mkdir()
    (ws / "keys" / "id_ed25519").write_text("not for the model\n")
    (ws / "credentials.json").write_text('{"token": "not for the model"}\n')
    if sys.platform != "win32":
        os.mkfifo(ws / "fifo.py")
        (ws / "link_in.py").symlink_to(ws / "ok.py")
        (ws / "link_out.py").symlink_to(outside / "secret.py")
        (ws / "etc").symlink_to("/etc")
        (ws / "env_link.txt").symlink_to(ws / ".env")
    return ws


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rpc(workspace: Path) -> AsyncIterator[StdioServer]:
    async with StdioServer.started() as server:
        settings = {"modelPath": "/nonexistent/model.gguf", "storagePath": str(workspace.parent / "storage")}
        await server.initialize({**settings, "indexEnable": False}, folder=workspace)
        yield server


def uri(path: Path | str) -> str:
    return Path(path).as_uri() if isinstance(path, Path) else path


async def complete(rpc: StdioServer, target: str) -> dict[str, Any]:
    return await rpc.request(
        f"complete-{target}",
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": target}, "position": {"line": 0, "character": 1}, "context": {"triggerKind": 1}},
        timeout=10,
    )


async def explain(rpc: StdioServer, target: str, line: int = 0) -> dict[str, Any]:
    at = {"start": {"line": line, "character": 0}, "end": {"line": line + 1, "character": 0}}
    args = {"uri": target, "range": at, "force": True}  # (past the capability gate)
    return await rpc.request(
        f"explain-{target}",
        "workspace/executeCommand",
        {"command": "ryzanstein.sidecar.explain", "arguments": [args]},
        timeout=10,
    )


def refused(answer: dict[str, Any], why: str) -> None:
    assert "result" not in answer, answer
    assert answer["error"]["code"] == INVALID_PARAMS and why in answer["error"]["message"], answer


@on_module_loop
@pytest.mark.parametrize("name", ["ok.py", "with space.py", pytest.param("link_in.py", marks=needs_posix)])
async def test_regular_file_inside_the_workspace_is_read(rpc: StdioServer, workspace: Path, name: str) -> None:
    answer = await complete(rpc, uri(workspace / name))
    assert answer["result"] == {"items": []}  # read (no model here: nothing to suggest)


@on_module_loop
@needs_posix
async def test_fifo_is_refused_at_once(rpc: StdioServer, workspace: Path) -> None:
    started = time.monotonic()
    refused(await complete(rpc, uri(workspace / "fifo.py")), "not a regular file")
    refused(await explain(rpc, uri(workspace / "fifo.py")), "not a regular file")
    assert time.monotonic() - started < 5


@on_module_loop
@needs_posix
@pytest.mark.parametrize("target", ["file:///dev/zero", "file:///etc/passwd", "file:///proc/self/environ"])
async def test_files_outside_the_workspace_are_refused(rpc: StdioServer, target: str) -> None:
    before = psutil.Process(rpc.proc.pid).memory_info().rss
    refused(await complete(rpc, target), "outside the workspace")
    refused(await explain(rpc, target), "outside the workspace")
    assert psutil.Process(rpc.proc.pid).memory_info().rss - before < 32 * 2**20


@on_module_loop
@needs_posix
@pytest.mark.parametrize("name", ["link_out.py", "etc/passwd", "../outside/secret.py"])
async def test_links_and_dots_out_of_the_workspace_are_refused(rpc: StdioServer, workspace: Path, name: str) -> None:
    target = f"{workspace.as_uri()}/{name}"  # as the client wrote it: not normalised
    refused(await explain(rpc, target), "outside the workspace")


@on_module_loop
@pytest.mark.parametrize(
    "name", [".env", "keys/id_ed25519", "credentials.json", pytest.param("env_link.txt", marks=needs_posix)]
)
async def test_files_of_secrets_are_never_read(rpc: StdioServer, workspace: Path, name: str) -> None:
    """The index never reads them (index/files.py's SECRET_PATTERNS), and neither does anything else the client
    names without opening: Explain with force sent a never-opened .env to the model."""
    refused(await explain(rpc, uri(workspace / name)), "secrets")
    refused(await complete(rpc, uri(workspace / name)), "secrets")


@on_module_loop
async def test_explain_past_the_end_says_so(rpc: StdioServer, workspace: Path) -> None:
    refused(await explain(rpc, uri(workspace / "ok.py"), line=40), "line 40 is past the end of the document (3 lines)")
    target = uri(workspace / "open-empty.py")
    item = {"uri": target, "languageId": "python", "version": 1, "text": ""}
    await rpc.notify("textDocument/didOpen", {"textDocument": item})
    refused(await explain(rpc, target, line=1), "line 1 is past the end of the document (1 line)")
    await rpc.notify("textDocument/didClose", {"textDocument": {"uri": target}})


@on_module_loop
async def test_file_over_the_cap_is_refused(rpc: StdioServer, workspace: Path) -> None:
    refused(await complete(rpc, uri(workspace / "big.py")), f"over {MAX_UNOPENED_BYTES} bytes")


@on_module_loop
async def test_file_that_is_not_utf8_is_refused(rpc: StdioServer, workspace: Path) -> None:
    refused(await complete(rpc, uri(workspace / "latin1.py")), "not UTF-8")


@on_module_loop
@pytest.mark.parametrize("target", ["untitled:Untitled-1", "https://example.com/x.py", "file://server/share/x.py"])
async def test_documents_that_are_no_local_file_are_refused(rpc: StdioServer, target: str) -> None:
    refused(await complete(rpc, target), "not open in the editor")


@on_module_loop
async def test_missing_file_is_refused(rpc: StdioServer, workspace: Path) -> None:
    refused(await complete(rpc, uri(workspace / "missing.py")), "cannot be read")


@on_module_loop
async def test_an_open_document_is_never_read_from_disk(rpc: StdioServer, workspace: Path) -> None:
    target = uri(workspace / "fifo.py") if sys.platform != "win32" else uri(workspace / "open.py")
    await rpc.notify(
        "textDocument/didOpen", {"textDocument": {"uri": target, "languageId": "python", "version": 1, "text": "x"}}
    )
    assert (await complete(rpc, target))["result"] == {"items": []}
    await rpc.notify("textDocument/didClose", {"textDocument": {"uri": target}})
    assert "result" in await rpc.request("ping-after", "ryzanstein/ping", None)


# ---- the reading itself, in this process ------------------------------------------------------------------------


def test_read_unopened_reads_inside_and_refuses_outside(workspace: Path) -> None:
    assert read_unopened(uri(workspace / "ok.py"), [workspace]).startswith("def area")
    with pytest.raises(DocumentRefused, match="outside the workspace"):
        read_unopened(uri(workspace / "ok.py"), [workspace / "elsewhere"])
    with pytest.raises(DocumentRefused, match="outside the workspace"):
        read_unopened(uri(workspace / "ok.py"), [])  # no workspace folder: nothing is read


def test_a_read_that_hangs_is_given_up(monkeypatch: pytest.MonkeyPatch, workspace: Path) -> None:
    def hang(*args: Any) -> str:
        time.sleep(3)
        return ""

    monkeypatch.setattr(documents, "_read", hang)
    monkeypatch.setattr(documents, "READ_TIMEOUT_S", 0.2)
    started = time.monotonic()
    with pytest.raises(DocumentRefused, match="could not be read within"):
        read_unopened(uri(workspace / "ok.py"), [workspace])
    assert time.monotonic() - started < 1.5


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("start", "end", "why"),
    [((1, 2), (0, 0), "ends (0:0) before it starts (1:2)"), ((5, 0), (6, 0), "reaches line 6, past the document")],
)
async def test_a_change_that_cannot_apply_is_not_dropped_silently(
    rpc: StdioServer, workspace: Path, start: tuple[int, int], end: tuple[int, int], why: str
) -> None:
    """pygls would drop the first and append the second: the server's text would part from the editor's. The
    document is refused (with the reason) until the editor opens it again."""
    target = uri(workspace / "ok.py")
    item = {"uri": target, "languageId": "python", "version": 1, "text": "x = 1\ny = 2\n"}
    await rpc.notify("textDocument/didOpen", {"textDocument": item})
    rng = {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}
    await rpc.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": target, "version": 2}, "contentChanges": [{"range": rng, "text": "Z"}]},
    )
    refused(await complete(rpc, target), why)
    refused(await complete(rpc, target), "close and reopen it")
    await rpc.notify("textDocument/didClose", {"textDocument": {"uri": target}})
    await rpc.notify("textDocument/didOpen", {"textDocument": item})
    assert "result" in await complete(rpc, target)  # reopened: in sync again
    await rpc.notify("textDocument/didClose", {"textDocument": {"uri": target}})
