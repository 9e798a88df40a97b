"""The OpenAI-compatible API, driven by the real `openai` client over HTTP against a real uvicorn server with the
shipped model: plain and streamed completions and chat, fill-in-the-middle equal to the LSP pipeline's output,
cancel on disconnect, 20 concurrent clients, and the 4xx errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import uvicorn

from pyserver.api.app import Api
from pyserver.completion.filters import CursorContext, apply_filters
from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.generate import generate
from pyserver.engine.host import ModelHost
from pyserver.server.settings import ServerSettings

KEY = "test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[Api, str]]:
    host = ModelHost()
    host.load()  # the shipped model
    assert host.model is not None, host.error
    a = Api(host, api_key=KEY)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(a.app(), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield a, f"http://127.0.0.1:{port}"
    server.should_exit = True
    th.join(10)


@pytest.fixture(scope="module")
def client(api: tuple[Api, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=api[1] + "/v1", api_key=KEY, max_retries=0, timeout=120)


def test_models_and_a_plain_completion(api: tuple[Api, str], client: openai.OpenAI) -> None:
    a, _ = api
    assert [m.id for m in client.models.list().data] == [a.model_id]
    prompt = "def read_config(path):\n"
    r = client.completions.create(model=a.model_id, prompt=prompt, max_tokens=24, temperature=0)
    # The engine itself, on the same tokens, greedy: the same text.
    m = a.host.model
    assert m is not None and m.tokenizer is not None
    want = generate(m.session(256), m.tokenizer.encode(prompt), max_tokens=24).text
    assert r.choices[0].text == want and want
    assert r.usage is not None and r.usage.completion_tokens > 0
    streamed = client.completions.create(model=a.model_id, prompt=prompt, max_tokens=24, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == want


def test_chat_plain_and_streamed(api: tuple[Api, str], client: openai.OpenAI) -> None:
    a, _ = api
    messages = [{"role": "user", "content": "Write a Python function that adds two numbers."}]
    r = client.chat.completions.create(model=a.model_id, messages=messages, max_tokens=20, temperature=0)  # type: ignore[arg-type]
    text = r.choices[0].message.content
    assert r.choices[0].message.role == "assistant" and text
    chunks = list(
        client.chat.completions.create(
            model=a.model_id,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=20,
            temperature=0,
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_fill_in_the_middle_matches_the_lsp_pipeline(api: tuple[Api, str], client: openai.OpenAI) -> None:
    a, _ = api
    prefix = "import math\n\n\ndef circle_area(radius):\n"
    suffix = "\n\n\nprint(circle_area(2.0))\n"
    settings = ServerSettings().completion
    pipeline = CompletionPipeline(a.host, settings)
    shown = pipeline.complete("file:///fim.py", prefix + suffix, len(prefix), lambda: False)
    assert shown is not None
    r = client.completions.create(
        model=a.model_id, prompt=prefix, suffix=suffix, max_tokens=settings.max_tokens, temperature=0, stop=["\n\n\n"]
    )
    # The same prompt tokens as the pipeline's, the same raw text; filtered as the editor filters, the same shown text.
    ctx = CursorContext(prefix, suffix)
    assert apply_filters(r.choices[0].text, ctx, max_lines=settings.max_lines) == shown.candidate


def test_a_client_that_disconnects_stops_its_generation(api: tuple[Api, str], client: openai.OpenAI) -> None:
    a, base = api
    before = a.runner.cancelled
    body = {"model": a.model_id, "prompt": "class Server:\n", "max_tokens": 5000, "temperature": 0.8, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", base + "/v1/completions", json=body, headers=headers, timeout=60) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data:"):
                break  # one chunk, then the client goes away
    deadline = time.time() + 10
    while a.runner.cancelled == before and time.time() < deadline:
        time.sleep(0.05)
    assert a.runner.cancelled == before + 1
    # and the server goes on answering
    assert client.completions.create(model=a.model_id, prompt="x = ", max_tokens=4, temperature=0).choices


def test_twenty_concurrent_clients_are_all_answered(api: tuple[Api, str], client: openai.OpenAI) -> None:
    a, _ = api

    def one(i: int) -> str:
        r = client.completions.create(model=a.model_id, prompt=f"def f{i}(x):\n", max_tokens=8, temperature=0)
        return r.choices[0].finish_reason

    with ThreadPoolExecutor(20) as pool:
        reasons = list(pool.map(one, range(20)))
    assert len(reasons) == 20 and all(r in ("stop", "length") for r in reasons)


def test_bad_requests_get_4xx_json_errors(api: tuple[Api, str]) -> None:
    a, base = api
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = httpx.post(base + "/v1/completions", content=b"{not json", headers=h)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(base + "/v1/completions", json={"prompt": "x", "max_tokens": -1}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    r = httpx.post(base + "/v1/completions", json={"model": "gpt-4", "prompt": "x"}, headers=h)
    assert r.status_code == 404
    r = httpx.post(base + "/v1/chat/completions", json={"messages": "hi"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(base + "/v1/completions", json={"prompt": "x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
