"""pygls 2.x keeps the future of every notification (and of every step of a generator handler: the built-in
didOpen/didChange/setTrace, executeCommand) in `_request_futures` and never removes it, about 1.7 KB a message.
The sidecar's protocol drops finished ones: 5,000 notifications of each kind leave the dict as it was."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pyserver.server.server import COMMANDS, FEATURES
from pyserver.server.sidecar import RyzansteinServer


class Collected:
    """A writer that keeps what the server sends."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.messages.append(json.loads(data.split(b"\r\n\r\n", 1)[1]))

    def close(self) -> None:
        pass


def fresh_server() -> tuple[RyzansteinServer, Collected]:
    """A sidecar with every handler of the real one, not the shared instance."""
    ls = RyzansteinServer()
    for method, options, handler in FEATURES:
        ls.feature(method, options)(handler)
    for name, command in COMMANDS.items():
        ls.command(name)(command)
    writer = Collected()
    ls.protocol.set_writer(writer)
    return ls, writer


def send(ls: RyzansteinServer, message: dict[str, Any]) -> None:
    ls.protocol.receive(json.dumps({"jsonrpc": "2.0", **message}).encode())


@pytest.mark.asyncio
async def test_notifications_leave_no_futures_behind(tmp_path: Path) -> None:
    ls, writer = fresh_server()
    storage = str(tmp_path / "storage")
    params = {"processId": None, "rootUri": None, "capabilities": {}}
    send(ls, {"id": 1, "method": "initialize", "params": {**params, "initializationOptions": {"storagePath": storage}}})
    uri = "file:///leak/doc.py"
    document = {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}
    send(ls, {"method": "textDocument/didOpen", "params": {"textDocument": document}})
    await asyncio.sleep(0)
    futures, result_types = len(ls.protocol._request_futures), len(ls.protocol._result_types)
    for i in range(5_000):
        change = {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}}, "text": "y"}
        send(
            ls,
            {
                "method": "textDocument/didChange",
                "params": {"textDocument": {"uri": uri, "version": i + 2}, "contentChanges": [change]},
            },
        )
        send(ls, {"method": "$/setTrace", "params": {"value": "off"}})
        send(ls, {"method": "ryzanstein/cursorRest", "params": {"uri": uri, "position": {"line": 0, "character": 1}}})
        send(ls, {"method": "workspace/didChangeConfiguration", "params": {"settings": {"ryzanstein": {}}}})
        if i % 500 == 0:
            await asyncio.sleep(0)  # what was scheduled runs (and its future is done)
    for i in range(200):  # requests through a generator (executeCommand) and async handlers
        send(
            ls,
            {
                "id": f"status-{i}",
                "method": "workspace/executeCommand",
                "params": {"command": "ryzanstein.sidecar.status"},
            },
        )
        send(ls, {"id": f"ping-{i}", "method": "ryzanstein/ping"})
    for _ in range(20):
        await asyncio.sleep(0.01)
    answered = {m["id"] for m in writer.messages if "id" in m and "result" in m}
    assert {f"ping-{i}" for i in range(200)} | {f"status-{i}" for i in range(200)} <= answered
    assert len(ls.protocol._request_futures) == futures
    assert len(ls.protocol._result_types) == result_types
    doc = ls.workspace.get_text_document(uri)
    assert (doc.source, doc.version) == ("y = 1\n", 5_001)  # every change was applied
