"""The prompt window: what the completion prompt shows of the code before the cursor, in files of any length.

The expectations are computed here from the documented rule, not from the module's helpers: the typed part of
the cursor's line is the forced start; the prompt's prefix is the end of the text before that line, between 3/4 of
its token share and all of it (or all of the text when that fits), and the same while the user types along a
line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyserver.completion.pipeline import (
    SUFFIX_MAX_TOKENS,
    TYPED_RESERVE_TOKENS,
    CompletionPipeline,
)
from pyserver.completion.prompt import RESPELL_MAX_CHARS
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.host import ModelHost
from pyserver.engine.token_bytes import matcher_for
from pyserver.engine.tokenizer import Tokenizer
from pyserver.models import default_model_path
from pyserver.server.settings import ServerSettings

WORDS = [
    "self",
    "return",
    "if",
    "x",
    "value",
    "None",
    "for",
    "in",
    "items",
    "def",
    "name",
    "=",
    "(",
    ")",
    ":",
    ".",
    ",",
    "[",
    "]",
    "0",
    "1",
    "'text'",
    "+",
    "é",
    "→",
    "#",
    "\t",
]
SLACK = 3  # tokens: a window re-tokenized from a line start can merge its first pieces differently


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    path = default_model_path()
    assert path is not None, "the shipped model is part of the repository"
    return Tokenizer.from_gguf_metadata(GGUFFile(path).metadata)


def make_file(seed: int, n_lines: int) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_lines):
        indent = "    " * int(rng.integers(0, 4))
        n = int(rng.integers(0, 14))
        lines.append(indent + " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), n)))
    return "\n".join(lines) + "\n"


def split_prompt(tok: Tokenizer, prompt: list[int]) -> tuple[list[int], list[int]]:
    sp = tok.special
    assert prompt[0] == sp.fim_prefix and prompt[-1] == sp.fim_middle
    i = prompt.index(sp.fim_suffix)
    return prompt[1:i], prompt[i + 1 : -1]


def expected_share(budget: int) -> int:
    room = budget - 3 - TYPED_RESERVE_TOKENS
    return room - min(SUFFIX_MAX_TOKENS, room // 4)


def check(tok: Tokenizer, engine: CompletionPipeline, text: str, offset: int, budget: int) -> list[int]:
    prefix, suffix = text[:offset], text[offset:]
    prompt, typed = engine.prompt("file:///a.py", tok, "psm", prefix, suffix, budget)
    line = prefix[prefix.rfind("\n") + 1 :]
    if len(line) <= RESPELL_MAX_CHARS:
        assert typed == line  # the typed part of the line is always the generation's start
        before = prefix[: len(prefix) - len(line)]
    else:
        assert typed == ""
        before = prefix
    pre, suf = split_prompt(tok, prompt)
    as_bytes = matcher_for(tok).text_of
    shown = as_bytes(pre)
    assert before.encode().endswith(shown)  # the code right before the cursor's line, nothing else
    share = expected_share(budget)
    assert len(pre) <= share
    whole = len(tok.encode(before))
    if whole <= share:
        assert shown == before.encode()
    else:
        assert len(pre) >= int(np.ceil(0.75 * share)) - SLACK, (len(pre), share)
    assert suffix.encode().startswith(as_bytes(suf)) and len(suf) <= SUFFIX_MAX_TOKENS
    assert len(prompt) + TYPED_RESERVE_TOKENS <= budget
    return prompt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    n_lines=st.integers(1, 1500),
    where=st.floats(0, 1),
    col=st.floats(0, 1),
    budget=st.integers(120, 1024),
)
def test_window_holds_the_code_before_the_cursor(
    tok: Tokenizer, seed: int, n_lines: int, where: float, col: float, budget: int
) -> None:
    text = make_file(seed, n_lines)
    engine = CompletionPipeline(ModelHost(), ServerSettings().completion)
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"][:-1]
    start = line_starts[int(where * (len(line_starts) - 1))]
    end = text.find("\n", start)
    offset = start + int(col * (end - start))
    check(tok, engine, text, offset, budget)
    # Typing the line's rest (the document holds what is typed so far, then the next lines) keeps the prompt, so
    # the cache serves all of it.
    typed = [check(tok, engine, text[:c] + text[end:], c, budget) for c in (offset, offset + 1, end) if c <= end]
    assert all(p == typed[0] for p in typed)


def test_fifty_kilobyte_file_keeps_its_window(tok: Tokenizer) -> None:
    text = make_file(7, 6000)
    assert len(text) > 50_000
    engine = CompletionPipeline(ModelHost(), ServerSettings().completion)
    budget = 512 - 64  # the shipped model's context less the generation
    for frac in np.linspace(0.05, 1.0, 40):
        offset = text.find("\n", int(frac * (len(text) - 2))) + 1
        offset = min(offset + 7, len(text))  # a few characters into the line
        check(tok, engine, text, offset, budget)


def test_window_moves_in_steps_as_lines_are_added(tok: Tokenizer) -> None:
    """Going down a file line by line, the window's start moves only when it must: the cache keeps the rest."""
    text = make_file(3, 4000)
    engine = CompletionPipeline(ModelHost(), ServerSettings().completion)
    starts = []
    for pos in [i + 1 for i, ch in enumerate(text) if ch == "\n"][2000:2300]:
        prompt, _ = engine.prompt("file:///a.py", tok, "psm", text[:pos], text[pos:], 448)
        pre, _ = split_prompt(tok, prompt)
        starts.append(pos - len(tok.decode(pre)))
    moves = sum(a != b for a, b in zip(starts, starts[1:]))
    assert moves <= len(starts) // 5  # a quarter of the share (many lines) between moves
