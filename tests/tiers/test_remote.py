"""The remote tier against a real llama.cpp server (llama-cpp-python's `server` extra, serving the shipped GGUF on
127.0.0.1): streamed completions equal the server's own non-streamed answer, the API key, cancellation, and a
server that is down failing fast, marked down, with the local writer taking over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyserver.engine import Model
from pyserver.models import default_model_path
from pyserver.refactor.writer import FallbackWriter, LocalWriter
from pyserver.tiers.remote import RemoteConfig, RemoteEngine, RemoteUnavailable

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server] (the dev extra installs it)")

KEY = "sk-test-ryzanstein"
PROMPT = "import math\n\n\ndef circle_area(radius):\n    return"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_llama_server(port: int, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("llama.cpp's server exited") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("llama.cpp's server did not start")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    proc = start_llama_server(port, "--api_key", KEY)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def plain_completion(url: str, body: dict[str, object]) -> str:
    """The server's own answer, not streamed, with the standard library's client: the reference."""
    req = urllib.request.Request(
        f"{url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return str(json.loads(resp.read())["choices"][0]["text"])


def test_streamed_completion_equals_the_servers_own_answer(server: str) -> None:
    engine = RemoteEngine(RemoteConfig(server, KEY))
    assert engine.model_name().endswith("ryzanstein-code.gguf") and engine.available()
    pieces: list[str] = []
    text = engine.complete(PROMPT, None, 24, ["\n\n\n"], lambda: False, on_text=pieces.append)
    expected = plain_completion(server, {"prompt": PROMPT, "max_tokens": 24, "temperature": 0, "stop": ["\n\n\n"]})
    assert text == expected and text
    assert len(pieces) > 1 and pieces[-1] == text  # it came as a stream


def test_the_api_key_is_sent(server: str) -> None:
    engine = RemoteEngine(RemoteConfig(server + "/v1"))  # no key: the server refuses
    with pytest.raises(RemoteUnavailable, match="HTTP 401"):
        engine.complete(PROMPT, None, 4, [], lambda: False)
    assert engine.down  # (a refused key is not retried on every request)


def test_a_stopped_generation_returns_none(server: str) -> None:
    engine = RemoteEngine(RemoteConfig(server, KEY))
    seen: list[str] = []
    out = engine.complete(PROMPT, None, 200, [], lambda: len(seen) > 0, on_text=seen.append)
    assert out is None and len(seen) == 1


def test_a_server_that_is_down_fails_fast_and_the_local_writer_answers() -> None:
    engine = RemoteEngine(RemoteConfig(f"http://127.0.0.1:{free_port()}"))
    t0 = time.perf_counter()
    assert engine.available() is False and engine.down
    assert time.perf_counter() - t0 < 2.5
    local = LocalWriter(Model.load(default_model_path()).session())
    writer = FallbackWriter(engine, lambda: local)
    engine._down_until = 0.0  # (as if the back-off had passed: the remote is tried, fails, and the local takes over)
    out = writer.write(PROMPT, None, 8, ["\n"], lambda: False)
    assert out == local.write(PROMPT, None, 8, ["\n"], lambda: False) and writer.fell_back
    assert writer.name == Path(default_model_path()).name


def test_urls_are_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        RemoteEngine(RemoteConfig("ftp://example.org"))
    assert RemoteConfig("http://h:1").base == "http://h:1/v1" and RemoteConfig("http://h:1/v1/").base == "http://h:1/v1"
