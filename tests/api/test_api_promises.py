"""What the local API promises beyond the happy path, through the real `openai` client: a prompt longer than the
context is an OpenAI-shaped 400 (context_length_exceeded), never a 500; parameters it cannot honour (`n` > 1,
a required tool call) are refused by name instead of ignored; `logprobs` are given (chat and completions, with the top
alternatives); fill-in-the-middle stops at the gap; a port already taken is an error before any banner."""

from __future__ import annotations

import socket

import openai
import pytest

from pyserver.api.app import Api
from tests.api.test_openai_api import KEY, api, client  # noqa: F401  (the fixtures)


def test_a_prompt_longer_than_the_context_is_a_400(api: tuple[Api, str], client: openai.OpenAI) -> None:  # noqa: F811
    a, _ = api
    long = "def f(x):\n    return x + 1\n" * 400  # far more than the shipped model's 1,024 tokens
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=a.model_id, prompt=long, max_tokens=16)
    assert e.value.status_code == 400 and e.value.code == "context_length_exceeded"
    assert "1024" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=a.model_id, messages=[{"role": "user", "content": long}])
    assert e.value.code == "context_length_exceeded"


def test_what_it_cannot_do_is_refused_by_name(api: tuple[Api, str], client: openai.OpenAI) -> None:  # noqa: F811
    a, _ = api
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=a.model_id, prompt="x = ", max_tokens=4, n=2)
    assert e.value.param == "n"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=a.model_id,
            messages=[{"role": "user", "content": "hi"}],
            tools=[tool],  # type: ignore[list-item]
            tool_choice="required",
        )
    assert e.value.param == "tool_choice"
    # tools offered with the choice left to the model (as Continue sends them): a text answer, as "auto" allows
    r = client.chat.completions.create(
        model=a.model_id,
        messages=[{"role": "user", "content": "hi"}],
        tools=[tool],  # type: ignore[list-item]
        max_tokens=4,
    )
    assert r.choices[0].message.tool_calls is None
    # n=1 and an empty tool list are fine
    client.completions.create(model=a.model_id, prompt="x = ", max_tokens=2, n=1)


def test_logprobs_are_given(api: tuple[Api, str], client: openai.OpenAI) -> None:  # noqa: F811
    a, _ = api
    r = client.chat.completions.create(
        model=a.model_id,
        messages=[{"role": "user", "content": "def add(a, b):"}],
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(c.logprob <= 0 and len(c.top_logprobs) == 2 for c in content)
    assert all(c.top_logprobs[0].logprob >= c.top_logprobs[1].logprob for c in content)
    assert "".join(c.token for c in content) == r.choices[0].message.content
    c = client.completions.create(model=a.model_id, prompt="import ", max_tokens=5, temperature=0, logprobs=3)
    lp = c.choices[0].logprobs
    assert lp is not None and lp.top_logprobs is not None and all(len(t) <= 3 for t in lp.top_logprobs)
    assert lp.token_logprobs is not None and len(lp.token_logprobs) == len(lp.tokens or [])


def test_fill_in_the_middle_stops_at_the_gap(api: tuple[Api, str], client: openai.OpenAI) -> None:  # noqa: F811
    a, _ = api
    # (the shipped model, left to itself, writes the function after the gap again, then more)
    prefix = "def read(path):\n    with open(path) as f:\n"
    suffix = "\n\n\ndef write(path, text):\n    with open(path, 'w') as f:\n        f.write(text)\n"
    for stream in (False, True):
        r = client.completions.create(
            model=a.model_id, prompt=prefix, suffix=suffix, max_tokens=96, temperature=0, stream=stream
        )
        text = "".join(c.choices[0].text for c in r) if stream else r.choices[0].text  # type: ignore[union-attr]
        assert text.strip() and "def write" not in text and "\ndef " not in text, text


def test_a_taken_port_is_an_error_before_any_banner(capsys: pytest.CaptureFixture[str]) -> None:
    from pyserver.api.serve import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = serve(port=port)
    out = capsys.readouterr().out
    assert code != 0
    assert "ryzanstein API:" not in out and f"port {port}" in out
