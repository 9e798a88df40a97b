"""Continue.dev end to end: Continue's own CLI (`cn`, @continuedev/cli from npm, headless with -p), configured by
`python -m pyserver continue-config`, sends its prompt through our API; what it prints is what our API streamed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from pyserver.api.app import Api
from pyserver.engine.host import ModelHost
from tests.api.test_openai_api import _free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "node_modules" / "@continuedev" / "cli" / "dist" / "cn.js"


class Recorder:
    """An ASGI wrapper that keeps the chat answers the API streamed (their content deltas, joined)."""

    def __init__(self, app: Any) -> None:
        self.app, self.answers = app, []  # type: ignore[var-annotated]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            return await self.app(scope, receive, send)
        body: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        self.answers.append(_content(b"".join(body).decode()))


def _content(raw: str) -> str:
    if not raw.lstrip().startswith("data:"):
        return str(json.loads(raw)["choices"][0]["message"]["content"])
    out = ""
    for line in raw.splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            delta = json.loads(line[5:])["choices"][0].get("delta", {})
            out += delta.get("content") or ""
    return out


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[Recorder, int]]:
    host = ModelHost()
    host.load()  # the shipped model
    recorder = Recorder(Api(host).app())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield recorder, port
    server.should_exit = True
    th.join(10)


@pytest.mark.skipif(not CLI.exists(), reason="needs node_modules (npm ci installs @continuedev/cli)")
def test_continues_cli_answers_through_our_api(api: tuple[Recorder, int], tmp_path: Path) -> None:
    recorder, port = api
    config = tmp_path / "home" / ".continue" / "config.yaml"
    subprocess.run(
        [sys.executable, "-m", "pyserver", "continue-config", "--port", str(port), "--path", str(config)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_proxy", "_PROXY"))}
    env.update(HOME=str(tmp_path / "home"), CONTINUE_GLOBAL_DIR=str(tmp_path / "home" / ".continue"))
    out = subprocess.run(
        ["node", str(CLI), "-p", "Write a Python function that adds two numbers.", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert recorder.answers, "Continue's CLI never reached the API"
    answer = recorder.answers[-1].strip()
    assert answer and answer[:60].strip() in out.stdout  # what it printed is our model's answer
