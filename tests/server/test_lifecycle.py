"""The LSP life cycle over a raw pipe: nothing is served before `initialize` or after `shutdown`, `initialize` and
`initialized` count once, and the exit code says whether the client shut the server down (LSP: 0, else 1)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.server.stdio_server import StdioServer

SERVER_NOT_INITIALIZED, INVALID_REQUEST = -32002, -32600
NO_MODEL = {"modelPath": "/nonexistent/model.gguf"}


def settings(tmp_path: Path) -> dict[str, str]:
    return {**NO_MODEL, "storagePath": str(tmp_path / "storage")}


@pytest.mark.asyncio
async def test_requests_before_initialize_get_server_not_initialized(tmp_path: Path) -> None:
    async with StdioServer.started() as rpc:
        early = await rpc.request("early-ping", "ryzanstein/ping", None)
        assert early["error"]["code"] == SERVER_NOT_INITIALIZED
        status = await rpc.request("early-status", "workspace/executeCommand", {"command": "ryzanstein.sidecar.status"})
        assert status["error"]["code"] == SERVER_NOT_INITIALIZED
        uri = "file:///early/doc.py"
        await rpc.notify(  # a notification before initialize is dropped
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "x"}}
        )
        await rpc.initialize(settings(tmp_path))
        assert "result" in await rpc.request("ping", "ryzanstein/ping", None)
        completion = await rpc.request(
            "completion",
            "textDocument/inlineCompletion",
            {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 1}, "context": {"triggerKind": 1}},
        )
        assert completion["error"]["code"] == -32602  # not open: the early didOpen was dropped
        assert "not open" in completion["error"]["message"]


@pytest.mark.asyncio
async def test_a_malformed_initialize_can_be_sent_again(tmp_path: Path) -> None:
    async with StdioServer.started() as rpc:
        malformed = await rpc.request("early-bad", "textDocument/inlineCompletion", {"textDocument": 42})
        assert malformed["error"]["code"] == SERVER_NOT_INITIALIZED  # not initialized comes first
        bad = await rpc.request("initialize-bad", "initialize", {"processId": [1], "capabilities": []})
        assert bad["error"]["code"] == -32602  # InvalidParams: and the server is still not initialized
        assert (await rpc.request("ping-0", "ryzanstein/ping", None))["error"]["code"] == SERVER_NOT_INITIALIZED
        assert "capabilities" in (await rpc.initialize(settings(tmp_path)))["result"]
        assert "result" in await rpc.request("ping", "ryzanstein/ping", None)


@pytest.mark.asyncio
async def test_second_initialize_is_an_error(tmp_path: Path) -> None:
    async with StdioServer.started() as rpc:
        first = await rpc.initialize(settings(tmp_path))
        assert "capabilities" in first["result"]
        again = await rpc.request(
            "initialize-2", "initialize", {"processId": None, "rootUri": None, "capabilities": {}}
        )
        assert again["error"]["code"] == INVALID_REQUEST and "already initialized" in again["error"]["message"]
        assert "result" in await rpc.request("ping", "ryzanstein/ping", None)


@pytest.mark.asyncio
async def test_initialized_counts_once(tmp_path: Path) -> None:
    """Each `initialized` used to load the model again and start another index: 8 of them took 13 threads to
    206. Only the first is handled: one progress for the model's loading, and the threads stay."""
    folder = tmp_path / "ws"
    folder.mkdir()
    for i in range(3):
        (folder / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    async with StdioServer.started() as rpc:
        await rpc.initialize(settings(tmp_path), folder=folder)
        assert "result" in await rpc.request("ping-1", "ryzanstein/ping", None)
        process = psutil.Process(rpc.proc.pid)
        threads = process.num_threads()
        for _ in range(7):
            await rpc.notify("initialized", {})
        assert "result" in await rpc.request("ping-8", "ryzanstein/ping", None)
        created = [m for m in rpc.from_server if m.get("method") == "window/workDoneProgress/create"]
        begun = [
            m["params"]["value"]["title"]
            for m in rpc.from_server
            if m.get("method") == "$/progress" and m["params"]["value"].get("kind") == "begin"
        ]
        assert begun.count("Ryzanstein: loading model") == 1, begun
        assert len(created) <= 2  # the model's loading and the index's
        assert process.num_threads() <= threads + 2


@pytest.mark.asyncio
async def test_requests_after_shutdown_get_invalid_request_and_exit_is_0(tmp_path: Path) -> None:
    async with StdioServer.started() as rpc:
        await rpc.initialize(settings(tmp_path))
        assert (await rpc.request("shutdown", "shutdown", None))["result"] is None
        late = await rpc.request("late-ping", "ryzanstein/ping", None)
        assert late["error"]["code"] == INVALID_REQUEST
        again = await rpc.request("shutdown-2", "shutdown", None)
        assert again["error"]["code"] == INVALID_REQUEST
        await rpc.notify("exit", None)
        assert await rpc.exit_code() == 0


@pytest.mark.asyncio
async def test_exit_without_shutdown_is_1(tmp_path: Path) -> None:
    async with StdioServer.started() as rpc:
        await rpc.initialize(settings(tmp_path))
        await rpc.notify("exit", None)
        assert await rpc.exit_code() == 1


@pytest.mark.asyncio
async def test_exit_before_initialize_is_1() -> None:
    async with StdioServer.started() as rpc:
        await rpc.notify("exit", None)
        assert await rpc.exit_code() == 1


@pytest.mark.asyncio
async def test_end_of_stdin_without_exit_is_1(tmp_path: Path) -> None:
    async with StdioServer.started() as rpc:
        await rpc.initialize(settings(tmp_path))
        rpc.proc.stdin.close()  # type: ignore[union-attr]
        assert await rpc.exit_code() == 1


@pytest.mark.asyncio
async def test_end_of_stdin_after_shutdown_is_0(tmp_path: Path) -> None:
    async with StdioServer.started() as rpc:
        await rpc.initialize(settings(tmp_path))
        await rpc.request("shutdown", "shutdown", None)
        rpc.proc.stdin.close()  # type: ignore[union-attr]
        assert await rpc.exit_code() == 0
