"""A language server run as a subprocess and spoken to in raw JSON-RPC: each message framed with a Content-Length
header, as LSP defines, written to its stdin; its answers read from its stdout. For messages no LSP client library
would send (malformed params)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

TIMEOUT_S = 30.0


class StdioServer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self._stdin, self._stdout = proc.stdin, proc.stdout

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls, command: list[str]) -> AsyncIterator[StdioServer]:
        """The server running `command`; shut down (killed if it does not exit) at the end."""
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        server = cls(proc)
        try:
            yield server
            await server.request("shutdown-end", "shutdown", None)
            await server.notify("exit", None)
            await asyncio.wait_for(proc.wait(), TIMEOUT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self._stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await self._stdin.drain()

    async def notify(self, method: str, params: Any) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, msg_id: str, method: str, params: Any) -> dict[str, Any]:
        """Sends a request and returns the server's response to it (the whole message: "result" or "error");
        notifications and requests from the server meanwhile are read past."""
        await self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.receive(), TIMEOUT_S)
            if message.get("id") == msg_id and "method" not in message:
                return message

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
