"""ChatML with thinking off (pyserver/engine/chat_template.py) against hand-written prompts, against Jinja2 rendering
the templates themselves (pyserver/api/chat.py), and as token ids in the committed Qwen3 fixture's vocabulary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyserver.api.chat import render
from pyserver.bench.peer_files import QWEN3_CHAT_TEMPLATE
from pyserver.engine.chat_template import (
    ChatMarkers,
    Message,
    chatml_ids,
    is_chatml,
    knows_thinking,
    render_chatml,
)
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.tokenizer import USER_DEFINED, Tokenizer

FIXTURE = Path(__file__).resolve().parents[2] / "models" / "fixtures" / "qwen3-tiny-outliers-q2_0.gguf"
# Qwen2.5's shape of ChatML: no thinking switch.
QWEN2_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}<|start_header_id|>assistant<|end_header_id|>\n\n"
)


@pytest.fixture(scope="module")
def meta() -> dict[str, Any]:
    return dict(GGUFFile(FIXTURE).metadata)


@pytest.fixture(scope="module")
def tok(meta: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_gguf_metadata(meta, FIXTURE)


def test_the_prompt_as_written_by_hand() -> None:
    user = [Message("user", "Continue this code.\n```\nx = 1\n```")]
    assert render_chatml(user) == (
        "<|im_start|>user\nContinue this code.\n```\nx = 1\n```<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    both = [Message("system", "You write Python."), Message("user", "Hi")]
    assert render_chatml(both, assistant_prefix="```\ndef f():\n") == (
        "<|im_start|>system\nYou write Python.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n```\ndef f():\n"
    )
    assert render_chatml(user, think_block=False) == (
        "<|im_start|>user\nContinue this code.\n```\nx = 1\n```<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(ValueError, match="unknown chat role"):
        render_chatml([Message("tool", "x")])


@pytest.mark.parametrize("template,think", [(QWEN3_CHAT_TEMPLATE, True), (QWEN2_TEMPLATE, False)])
def test_agrees_with_jinja2_rendering_the_template(template: str, think: bool) -> None:
    messages = [Message("system", "Be brief."), Message("user", "def f(x):\n    return x  # <|im_start|> as text")]
    jinja = render(template, [{"role": m.role, "content": m.content} for m in messages])
    assert render_chatml(messages, think_block=think) == jinja
    assert is_chatml(template) and knows_thinking(template) == think


def test_which_templates_are_chatml(meta: dict[str, Any]) -> None:
    assert is_chatml(meta["tokenizer.chat_template"]) and knows_thinking(meta["tokenizer.chat_template"])
    assert not is_chatml(LLAMA3_TEMPLATE) and not is_chatml(None) and not is_chatml("")


def test_token_ids_put_the_markers_in_by_id(tok: Tokenizer) -> None:
    mk = ChatMarkers.of(tok)
    assert mk is not None and (mk.start, mk.end) == (tok.id_of("<|im_start|>"), tok.id_of("<|im_end|>"))
    content = "print('<|im_start|>')"  # the literal text in a document stays text
    ids = chatml_ids(tok, [Message("user", content)], assistant_prefix="```\nx = ")
    expected = [
        mk.start,
        *tok.encode("user\n" + content),
        mk.end,
        *tok.encode("\n"),
        mk.start,
        *tok.encode("assistant\n"),
        *tok.encode("<think>\n\n</think>\n\n```\nx = "),  # this vocabulary has no <think> token: spelled as text
    ]
    assert ids == expected
    assert ids.count(mk.start) == 2 and ids.count(mk.end) == 1
    assert tok.decode(ids) == "user\n" + content + "\nassistant\n<think>\n\n</think>\n\n```\nx = "


def test_think_tokens_by_id_where_the_vocabulary_has_them(meta: dict[str, Any]) -> None:
    # Qwen3's vocabulary has <think> / </think> as added (user-defined) tokens: put two in place of padding rows.
    tokens, types = list(meta["tokenizer.ggml.tokens"]), np.array(meta["tokenizer.ggml.token_type"])
    a, b = len(tokens) - 2, len(tokens) - 1
    tokens[a], tokens[b], types[a], types[b] = "<think>", "</think>", USER_DEFINED, USER_DEFINED
    tok = Tokenizer.from_gguf_metadata(meta | {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types})
    ids = chatml_ids(tok, [Message("user", "x")], assistant_prefix="y")
    tail = [a, *tok.encode("\n\n"), b, *tok.encode("\n\ny")]
    assert ids[-len(tail) :] == tail
    assert chatml_ids(tok, [Message("user", "x")], think_block=False)[-1] != b


def test_a_vocabulary_without_chatml_is_refused(tok: Tokenizer, meta: dict[str, Any]) -> None:
    tokens = [
        t if t not in ("<|im_start|>", "<|im_end|>") else f"[gone{i}]"
        for i, t in enumerate(meta["tokenizer.ggml.tokens"])
    ]
    plain = Tokenizer.from_gguf_metadata(meta | {"tokenizer.ggml.tokens": tokens})
    assert ChatMarkers.of(plain) is None
    with pytest.raises(ValueError, match="no <\\|im_start\\|>"):
        chatml_ids(plain, [Message("user", "x")])
