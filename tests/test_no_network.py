"""No network: the sidecar (`python -m pyserver` over stdio), the OpenAI-compatible API (`python -m pyserver api`) and
the MCP server (`python -m pyserver mcp`), each run under an audit hook that records every socket it makes
(tests/support/socket_audit.py), are used for completions, indexing, search and refactors. None makes a socket
other than AF_UNIX (the event loops' self-pipes), except the API, an HTTP server by design: its one listening socket
on 127.0.0.1 and the connections it accepts on it from this test's client.

(The probe this found: detect-secrets' plugins import `requests`, whose urllib3 binds an AF_INET6 socket to ::1 at
import to see whether the machine has IPv6.)"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from pyserver.bench.soak import LspPipe
from pyserver.models import default_model_path
from tests.support.socket_audit import Socket, command, sockets

FILES = {
    "geometry/shapes.py": (
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n\n\n"
        "def ring_area(outer, inner):\n    return circle_area(outer) - circle_area(inner)\n"
    ),
    "app.py": "from geometry.shapes import ring_area\n\n\nprint(ring_area(3.0, 1.0))\n",
}
TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def model() -> Path:
    path = default_model_path()
    assert path is not None, "the shipped model is missing (models/ryzanstein-code.gguf)"
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A cache of its own (the index, the MCP server's database); the file's own kernel layout, not timed."""
    return dict(os.environ) | {
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")),
        "RYZANSTEIN_LAYOUT": "decode",
    }


def not_allowed(made: list[Socket], api_port: int | None = None) -> list[str]:
    """The sockets that break the promise, each with where it was made."""
    listening = [s for s in made if s.binds and s.binds[0] == ["127.0.0.1", api_port]]
    bad = []
    for s in made:
        if s.unix or s in listening or (api_port is not None and s.accepted and len(listening) == 1):
            continue
        where = " <- ".join(s.stack)
        bad.append(f"family {s.family} type {s.type} bind {s.binds} connect {s.connects}, made at {where}")
    return bad


def test_the_sidecar_makes_no_socket(model: Path, workspace: Path, env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "sidecar.jsonl"
    pipe = LspPipe(command=command(log, "pyserver"), env=env, stderr=(tmp_path / "sidecar.log").open("wb"))
    try:
        pipe.initialize({"modelPath": str(model), "storagePath": str(tmp_path / "storage")}, workspace)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            state = pipe.request("workspace/executeCommand", {"command": "ryzanstein.sidecar.status"})["result"]
            if state["state"] in ("ready", "error"):
                break
            time.sleep(0.1)
        assert state["state"] == "ready", state
        uri = (workspace / "geometry" / "shapes.py").as_uri()
        item = {"uri": uri, "languageId": "python", "version": 1, "text": FILES["geometry/shapes.py"]}
        pipe.notify("textDocument/didOpen", {"textDocument": item})
        at = {"line": 4, "character": 11}
        completion = pipe.request(
            "textDocument/inlineCompletion",
            {"textDocument": {"uri": uri}, "position": at, "context": {"triggerKind": 1}},
            TIMEOUT_S,
        )
        assert "result" in completion, completion

        def command_(name: str, *args: Any) -> dict[str, Any]:
            answer = pipe.request("workspace/executeCommand", {"command": name, "arguments": list(args)}, TIMEOUT_S)
            assert "result" in answer, answer
            result: dict[str, Any] = answer["result"]
            return result

        assert command_("ryzanstein.sidecar.reindex")["indexed"]
        assert command_("ryzanstein.sidecar.search", {"query": "area of a ring"})["hits"]
        selection = {"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}}
        explained = command_("ryzanstein.sidecar.explain", {"uri": uri, "range": selection, "force": True})
        assert "text" in explained or "reason" in explained, explained
        docstring = {"uri": uri, "position": {"line": 3, "character": 4}, "force": True, "preview": True}
        assert "applied" in command_("ryzanstein.sidecar.docstring", docstring)
    finally:
        code = pipe.close()
    assert code == 0
    made = sockets(log)
    assert made, "the audit recorded nothing (the event loop's self-pipe at least is a socket)"
    assert not_allowed(made) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as r:
        answer: dict[str, Any] = json.loads(r.read())
        return answer


@pytest.fixture()
def api(model: Path, env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    port, log = _free_port(), tmp_path / "api.jsonl"
    cmd = command(log, "pyserver", "api", "--port", str(port), "--model", str(model))
    with (tmp_path / "api.log").open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            base, deadline = f"http://127.0.0.1:{port}/v1", time.monotonic() + TIMEOUT_S
            while True:
                try:
                    with urllib.request.urlopen(base + "/models", timeout=5):
                        break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "api.log").read_text()
                    time.sleep(0.2)
            yield base, port, log
        finally:
            proc.terminate()
            proc.wait(30)


def test_the_api_makes_no_socket_but_its_own(api: tuple[str, int, Path]) -> None:
    base, port, log = api
    completion = _post(base + "/completions", {"prompt": "def add(a, b):\n", "max_tokens": 8, "temperature": 0})
    assert completion["choices"][0]["text"] is not None
    messages = [{"role": "user", "content": "What does len() do?"}]
    chat = _post(base + "/chat/completions", {"messages": messages, "max_tokens": 8})
    assert chat["choices"][0]["message"]["content"] is not None
    made = sockets(log)
    listening = [s for s in made if s.binds == [["127.0.0.1", port]]]
    assert len(listening) == 1, made  # the audit sees the API's own socket...
    assert not_allowed(made, api_port=port) == []  # ...and nothing else but its connections


def test_the_mcp_server_makes_no_socket(workspace: Path, env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "mcp.jsonl"
    cmd = command(log, "pyserver", "mcp", "--root", str(workspace))

    async def session_run() -> None:
        params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            found = await session.call_tool("search_code", {"query": "area of a ring", "k": 3})
            assert not found.is_error and found.content
            done = await session.call_tool("complete", {"path": "app.py", "line": 4, "character": 0})
            assert not done.is_error
            told = await session.call_tool("explain", {"path": "geometry/shapes.py", "start_line": 4, "end_line": 5})
            assert not told.is_error

    asyncio.run(session_run())
    made = sockets(log)
    assert made, "the audit recorded nothing"
    assert not_allowed(made) == []


def test_the_audit_sees_the_ipv6_probe(tmp_path: Path) -> None:
    """The hook can fail: urllib3, imported under it, is caught binding its IPv6 probe."""
    log = tmp_path / "probe.jsonl"
    (tmp_path / "probe.py").write_text("import urllib3\n")
    subprocess.run(command(log, "probe"), cwd=tmp_path, check=True, timeout=TIMEOUT_S)
    bad = not_allowed(sockets(log))
    assert len(bad) == 1 and "_has_ipv6" in bad[0], bad
