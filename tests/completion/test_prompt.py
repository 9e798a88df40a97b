"""Fill-in-the-middle prompt layout and budgets."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver.completion.prompt import RESPELL_MAX_CHARS, fim_prompt, split_at_line_start
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.tokenizer import Tokenizer
from tests.support.builders import random_model, write_gguf
from tests.support.fixtures import BITNET_CPP_GGUF


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    m = random_model(np.random.default_rng(0), "bitnet", "TQ2_0", n_layer=1)
    return Tokenizer.from_gguf_metadata(GGUFFile(write_gguf(m, tmp_path_factory.mktemp("t") / "t.gguf")).metadata)


def test_layout_is_prefix_suffix_middle(tok: Tokenizer) -> None:
    sp = tok.special
    p = fim_prompt(tok, "def f(x):\n    ", "\n    return y\n", budget=200)
    assert p[0] == sp.fim_prefix and p[-1] == sp.fim_middle
    i = p.index(sp.fim_suffix)
    assert tok.decode(p[1:i]) == "def f(x):\n    "
    assert tok.decode(p[i + 1 : -1]) == "\n    return y\n"


def test_budget_keeps_text_nearest_the_cursor(tok: Tokenizer) -> None:
    prefix = "".join(f"line_{i} = {i}\n" for i in range(200))
    suffix = "".join(f"after_{i}()\n" for i in range(200))
    p = fim_prompt(tok, prefix, suffix, budget=100)
    assert len(p) <= 100
    i = p.index(tok.special.fim_suffix)
    assert prefix.endswith(tok.decode(p[1:i]))
    assert suffix.startswith(tok.decode(p[i + 1 : -1]))
    assert i - 1 > len(p) - i - 2  # the prefix gets the larger share


def test_plain_prefix_without_fim_tokens() -> None:
    spm = Tokenizer.from_gguf_metadata(GGUFFile(BITNET_CPP_GGUF).metadata)
    assert not spm.special.has_fim
    assert spm.decode(fim_prompt(spm, "abc def", "ignored", budget=50)) == "abc def"


def test_spm_layout_puts_the_suffix_first(tok: Tokenizer) -> None:
    sp = tok.special
    p = fim_prompt(tok, "def f(x):\n    ", "\n    return y\n", budget=200, order="spm")
    assert p[:2] == [sp.fim_prefix, sp.fim_suffix]
    i = p.index(sp.fim_middle)
    assert tok.decode(p[2:i]) == "\n    return y\n"
    assert tok.decode(p[i + 1 :]) == "def f(x):\n    "  # the prefix runs on into the middle


def test_split_at_line_start() -> None:
    assert split_at_line_start("def f(x):\n    return ") == ("def f(x):\n", "    return ")
    assert split_at_line_start("x = 1\n") == ("x = 1\n", "")
    assert split_at_line_start("first line") == ("", "first line")
    long = "a\n" + "y = " + "1 + " * RESPELL_MAX_CHARS
    assert split_at_line_start(long) == (long, "")  # too long to re-spell: the prompt keeps it
