"""A language server run as a subprocess and spoken to in raw JSON-RPC: each message framed with a Content-Length
header, as LSP defines, written to its stdin; its answers read from its stdout. For messages no LSP client library
would send (malformed params, broken framing: `write` sends bytes as they are)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

TIMEOUT_S = 30.0
SERVER = [sys.executable, "-m", "pyserver"]


def frame(message: dict[str, Any] | bytes) -> bytes:
    """A message (or a body as it is) with its Content-Length header."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class StdioServer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._stdin, self._stdout = proc.stdin, proc.stdout
        self.from_server: list[dict[str, Any]] = []  # what the server sent that no `request` call waited for

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls, command: list[str] | None = None, env: Mapping[str, str] | None = None, stderr: Any = None
    ) -> AsyncIterator[StdioServer]:
        """The server running `command` (default: `python -m pyserver`); shut down at the end unless it has ended
        already (killed if it does not exit)."""
        proc = await asyncio.create_subprocess_exec(
            *(command or SERVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=None if env is None else dict(env),
        )
        server = cls(proc)
        try:
            yield server
            if proc.returncode is None:
                await server.request("shutdown-end", "shutdown", None)
                await server.notify("exit", None)
                await asyncio.wait_for(proc.wait(), TIMEOUT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def write(self, data: bytes) -> None:
        """Bytes to the server's stdin as they are."""
        self._stdin.write(data)
        await self._stdin.drain()

    async def send(self, message: dict[str, Any]) -> None:
        await self.write(frame(message))

    async def notify(self, method: str, params: Any) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, msg_id: str, method: str, params: Any, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Sends a request and returns the server's response to it (the whole message: "result" or "error")."""
        await self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return await self.response(msg_id, timeout)

    async def response(self, msg_id: str | None, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """The next response with this id (None: an error about a message whose id the server could not read).
        The server's notifications and requests meanwhile go to `from_server`; its requests are answered with a
        null result (as a client that accepts a progress token does)."""
        while True:
            message = await asyncio.wait_for(self.receive(), timeout)
            if "method" not in message and message.get("id", "no id") == msg_id:
                return message
            if "method" in message and "id" in message:
                await self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            self.from_server.append(message)

    async def initialize(
        self, settings: Mapping[str, Any] | None = None, folder: Path | None = None, initialized: bool = True
    ) -> dict[str, Any]:
        """`initialize` (with the sidecar's settings and a workspace folder) and, unless told not to,
        `initialized`."""
        uri = folder.resolve().as_uri() if folder is not None else None
        answer = await self.request(
            "initialize",
            "initialize",
            {
                "processId": None,
                "rootUri": uri,
                "capabilities": {"window": {"workDoneProgress": True}},
                "workspaceFolders": [{"uri": uri, "name": "ws"}] if uri else None,
                "initializationOptions": {"ryzanstein": dict(settings or {})},
            },
        )
        if initialized:
            await self.notify("initialized", {})
        return answer

    async def exit_code(self, timeout: float = TIMEOUT_S) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def receive(self) -> dict[str, Any]:
        length = None
        while True:
            line = await self._stdout.readline()
            if not line:
                raise EOFError("the server closed its stdout")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        assert length is not None, "a message without Content-Length"
        message: dict[str, Any] = json.loads(await self._stdout.readexactly(length))
        return message
