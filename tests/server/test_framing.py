"""Broken framing and broken JSON-RPC over a raw pipe to `python -m pyserver`: each costs that message only (with
the error JSON-RPC says, where there is one to give), and the next request is answered.

One server for the module; every test ends with a ping that must be answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from tests.server.stdio_server import StdioServer, frame

pytestmark = pytest.mark.asyncio(loop_scope="module")

PARSE_ERROR, INVALID_REQUEST = -32700, -32600


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rpc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StdioServer]:
    storage = tmp_path_factory.mktemp("storage")
    async with StdioServer.started() as server:
        await server.initialize({"modelPath": "/nonexistent/model.gguf", "storagePath": str(storage)})
        yield server


def ping(msg_id: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "ryzanstein/ping"}


async def answered(rpc: StdioServer, msg_id: str) -> list[dict[str, Any]]:
    """Waits for the answer to the ping `msg_id` (sent already); returns the null-id errors that came before it."""
    rpc.from_server.clear()
    answer = await rpc.response(msg_id, timeout=10)
    assert "result" in answer, answer
    return [m for m in rpc.from_server if "error" in m and m.get("id", "missing") is None]


async def test_content_length_shorter_than_the_body(rpc: StdioServer) -> None:
    body = json.dumps(ping("short-lost")).encode()
    await rpc.write(b"Content-Length: %d\r\n\r\n" % (len(body) - 10) + body + frame(ping("short-next")))
    (error,) = await answered(rpc, "short-next")
    assert error["error"]["code"] == PARSE_ERROR  # the truncated body; the rest of it is skipped


async def test_content_length_longer_than_the_body(rpc: StdioServer) -> None:
    body = json.dumps(ping("long-first")).encode()
    await rpc.write(b"Content-Length: %d\r\n\r\n" % (len(body) + 500) + body + frame(ping("long-next")))
    # The next message's header inside the body shows where it really ended: both are served.
    assert await answered(rpc, "long-first") == []
    assert await answered(rpc, "long-next") == []


@pytest.mark.parametrize("extra", [1, 3, 14, 15, 16, 19, 20, 21, 22, 23, 30, 60])
@pytest.mark.parametrize("pause", [False, True])
async def test_content_length_a_little_longer_costs_no_message(rpc: StdioServer, extra: int, pause: bool) -> None:
    """The declared end falls inside the next message's header line (or its blank line, or its body): the header
    still shows where the first body ended, even when the bytes after the declared end come later (`pause`)."""
    body = json.dumps(ping("little-first")).encode()
    data = b"Content-Length: %d\r\n\r\n" % (len(body) + extra) + body + frame(ping("little-next"))
    cut = data.index(body) + len(body) + extra
    await rpc.write(data[:cut])
    if pause:
        await asyncio.sleep(0.3)
    await rpc.write(data[cut:])
    assert await answered(rpc, "little-first") == []
    assert await answered(rpc, "little-next") == []


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: 5\xff\r\n",  # the length itself broken
        b"X-Note: \xc3\x28\xff\r\n",  # a header that is not ASCII (nor UTF-8)
        b"\xfe\xfe\xfe\xfe\r\n",
        b"Content-Length: -5\r\n",
        b"Content-Length: 0x10\r\n",
        b"Content-Type: application/vscode-jsonrpc\r\n",  # no Content-Length at all
    ],
)
async def test_bad_header_bytes(rpc: StdioServer, header: bytes) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}}).encode()
    await rpc.write(header + b"\r\n" + body + frame(ping("after-bad-header")))
    await answered(rpc, "after-bad-header")


async def test_bad_header_before_a_good_content_length_keeps_the_message(rpc: StdioServer) -> None:
    await rpc.write(b"X-Junk: \xff\xfe\r\n" + frame(ping("kept")))
    await answered(rpc, "kept")


@pytest.mark.parametrize("length", [2**64, 64 * 2**30, 64 * 2**20 + 1, 10**40])
async def test_absurd_content_length_is_refused_without_allocating(rpc: StdioServer, length: int) -> None:
    process = psutil.Process(rpc.proc.pid)
    before = process.memory_info().rss
    await rpc.write(b"Content-Length: %d\r\n\r\n" % length + b'{"jsonrpc": "2.0"}' + frame(ping("after-huge")))
    (error,) = await answered(rpc, "after-huge")
    assert error["error"]["code"] == INVALID_REQUEST and "limit" in error["error"]["message"]
    assert process.memory_info().rss - before < 32 * 2**20


async def test_garbage_between_messages(rpc: StdioServer) -> None:
    await rpc.write(b"\r\n\r\nhello\x00\xff" * 300 + b"x" * 5000 + frame(ping("after-garbage")))
    await answered(rpc, "after-garbage")


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "id": "cut", "method": ',
        b"\xff\xfe{}",  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nested 100k deep
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"",
        b"NaN-ish nonsense",
    ],
)
async def test_body_that_is_not_json_gets_parse_error(rpc: StdioServer, body: bytes) -> None:
    await rpc.write(frame(body) + frame(ping("after-not-json")))
    (error,) = await answered(rpc, "after-not-json")
    assert error["error"]["code"] == PARSE_ERROR and error["id"] is None


@pytest.mark.parametrize(
    ("message", "answer_id"),
    [
        ([], None),  # a batch: not in LSP
        ([ping("in-a-batch")], None),
        (42, None),
        ("ping", None),
        (None, None),
        ({"jsonrpc": "1.0", "id": "v1", "method": "ryzanstein/ping"}, "v1"),
        ({"id": "no-version", "method": "ryzanstein/ping"}, "no-version"),
        ({"jsonrpc": "2.0", "id": {"an": "object"}, "method": "ryzanstein/ping"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "ryzanstein/ping"}, None),
        ({"jsonrpc": "2.0", "id": "num-method", "method": 7}, "num-method"),
        ({"jsonrpc": "2.0", "id": "both", "method": "ryzanstein/ping", "result": 1}, "both"),
        ({"jsonrpc": "2.0"}, None),
    ],
)
async def test_not_json_rpc_gets_invalid_request(rpc: StdioServer, message: Any, answer_id: str | None) -> None:
    await rpc.write(frame(json.dumps(message).encode()))
    if answer_id is None:
        await rpc.send(ping("after-invalid"))
        (error,) = await answered(rpc, "after-invalid")
    else:
        error = await rpc.response(answer_id, timeout=10)
        await rpc.send(ping("after-invalid"))
        await answered(rpc, "after-invalid")
    assert error["error"]["code"] == INVALID_REQUEST


async def test_response_without_a_request_is_dropped(rpc: StdioServer) -> None:
    await rpc.send({"jsonrpc": "2.0", "id": "never-asked", "result": {"x": 1}})
    await rpc.send({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "broken"}})
    await rpc.send(ping("after-response"))
    assert await answered(rpc, "after-response") == []  # a response is never answered


async def test_unknown_method_and_bad_params(rpc: StdioServer) -> None:
    unknown = await rpc.request("unknown", "no/suchMethod", {})
    assert unknown["error"]["code"] == -32601  # MethodNotFound
    bad = await rpc.request("bad-params", "textDocument/inlineCompletion", [1, 2, 3])
    assert bad["error"]["code"] == -32602  # InvalidParams


NOTIFICATIONS_WITH_AN_ID = [
    (
        "textDocument/didOpen",
        {"textDocument": {"uri": "file:///x/a.py", "languageId": "python", "version": 1, "text": ""}},
    ),
    ("textDocument/didChange", {"textDocument": {"uri": "file:///x/a.py", "version": 2}, "contentChanges": []}),
    ("textDocument/didSave", {"textDocument": {"uri": "file:///x/a.py"}}),
    ("textDocument/didClose", {"textDocument": {"uri": "file:///x/a.py"}}),
    ("workspace/didChangeConfiguration", {"settings": {"ryzanstein": {"maxTokens": 8}}}),
    ("workspace/didChangeWorkspaceFolders", {"event": {"added": [], "removed": []}}),
    ("$/cancelRequest", {"id": "nothing-running"}),
    ("$/setTrace", {"value": "off"}),
    ("window/workDoneProgress/cancel", {"token": "t"}),
    ("initialized", {}),
]


@pytest.mark.parametrize(("method", "params"), NOTIFICATIONS_WITH_AN_ID, ids=[m for m, _ in NOTIFICATIONS_WITH_AN_ID])
async def test_a_notification_sent_with_an_id_is_a_request_and_is_answered(
    rpc: StdioServer, method: str, params: dict[str, Any]
) -> None:
    """JSON-RPC: a message with an id is a request, and a request gets a response. No request has a notification's
    name, so it gets MethodNotFound (and is not acted on)."""
    answer = await rpc.request(f"as-request-{method}", method, params, timeout=10)
    assert answer["error"]["code"] == -32601 and "notification" in answer["error"]["message"], answer
    await rpc.send(ping("after-as-request"))
    await answered(rpc, "after-as-request")


async def test_a_notification_sent_with_an_id_is_not_acted_on(rpc: StdioServer) -> None:
    uri = "untitled:as-request"
    item = {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}
    await rpc.request("open-as-request", "textDocument/didOpen", {"textDocument": item}, timeout=10)
    # Not opened: a completion there is refused as for any document the editor has not opened.
    params = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 5}, "context": {"triggerKind": 1}}
    answer = await rpc.request("complete-unopened", "textDocument/inlineCompletion", params, timeout=10)
    assert answer["error"]["code"] == -32602 and "not open" in answer["error"]["message"], answer


async def test_many_messages_in_one_write(rpc: StdioServer) -> None:
    await rpc.write(b"".join(frame(ping(f"burst-{i}")) for i in range(500)))
    for i in range(500):
        await answered(rpc, f"burst-{i}")


async def test_a_large_message_under_the_limit_is_served(rpc: StdioServer, tmp_path: Path) -> None:
    del tmp_path
    text = "x = 1\n" * 500_000  # 3 MB
    await rpc.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": "file:///big/big.py", "languageId": "python", "version": 1, "text": text}},
    )
    await rpc.notify("textDocument/didClose", {"textDocument": {"uri": "file:///big/big.py"}})
    await rpc.send(ping("after-large"))
    assert await answered(rpc, "after-large") == []
