"""Token bytes, the agreeing-token search, and generation constrained to start with text already typed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyserver.engine import Model
from pyserver.engine.generate import generate
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.token_bytes import TokenMatcher, matcher_for
from pyserver.engine.tokenizer import Tokenizer
from tests.support.builders import random_model, write_gguf
from tests.support.fixtures import BITNET_CPP_GGUF


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    m = random_model(np.random.default_rng(11), "bitnet", "TQ2_0", n_layer=2)
    return Model.load(write_gguf(m, tmp_path_factory.mktemp("m") / "m.gguf"))


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=120))
def test_byte_level_pieces_spell_the_text(model: Model, text: str) -> None:
    tok = model.tokenizer
    assert tok is not None
    assert matcher_for(tok).text_of(tok.encode(text)) == text.encode("utf-8")


def test_sentencepiece_pieces_spell_the_text() -> None:
    tok = Tokenizer.from_gguf_metadata(GGUFFile(BITNET_CPP_GGUF).metadata)
    matcher = matcher_for(tok)
    text = "def héllo(x):\n\treturn '🎉'  # 漢字"
    # SentencePiece's normalizer puts a space before the text; the bytes keep it (a continuation needs its spaces).
    # This small vocabulary spells the U+2581 space marker with byte tokens, which must read as spaces too.
    assert matcher.text_of(tok.encode(text)) == b" " + text.encode("utf-8")
    assert matcher.normalize(" x") == "\u2581x".encode()
    assert all(matcher.pieces[i] == b"" for i in tok.control_ids)


@settings(max_examples=200, deadline=None)
@given(
    vocab=st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=60), rest=st.binary(min_size=1, max_size=6)
)
def test_agreeing_matches_brute_force(vocab: list[bytes], rest: bytes) -> None:
    pieces = [*vocab, b"", rest[:1] + b"\xff", b"\xff\xff"]
    got = sorted(TokenMatcher(pieces).agreeing(rest).tolist())
    want = [i for i, p in enumerate(pieces) if p and (rest.startswith(p) or p.startswith(rest))]
    assert got == want


def _constrained_reference(model: Model, prompt: list[int], forced: bytes, steps: int) -> list[int]:
    """Greedy decoding by hand: while the forced bytes are not covered, the best token among those that agree."""
    pieces = matcher_for(model.tokenizer).pieces  # type: ignore[arg-type]
    s = model.session()
    logits, out, covered = s.eval(prompt), [], 0
    for _ in range(steps):
        if covered < len(forced):
            rest = forced[covered:]
            ok = [i for i, p in enumerate(pieces) if p and (rest.startswith(p) or p.startswith(rest))]
            token = ok[int(np.argmax(logits[ok]))]
            covered += len(pieces[token])
        else:
            token = int(np.argmax(logits))
        out.append(token)
        logits = s.append([token])[-1]
    return out


@pytest.mark.parametrize("forced", ["    return ", "x", "def add(a, b):", "  # ü"])
def test_generation_starts_with_the_forced_text(model: Model, forced: str) -> None:
    tok = model.tokenizer
    assert tok is not None
    prompt = tok.encode("class Point:\n    def __init__(self):\n")
    r = generate(model.session(), prompt, max_tokens=6, stop_tokens=[], forced_prefix=forced)
    assert r.tokens == _constrained_reference(model, prompt, forced.encode("utf-8"), len(r.tokens))
    spelled = matcher_for(tok).text_of(r.tokens)
    assert spelled.startswith(forced.encode("utf-8"))
    assert r.text == spelled[len(forced.encode("utf-8")) :].decode("utf-8", errors="replace")
    assert len(r.tokens) - r.forced_tokens == 6 and r.forced_tokens >= 1


def test_forced_text_is_not_searched_for_stop_strings(model: Model) -> None:
    tok = model.tokenizer
    assert tok is not None
    r = generate(
        model.session(),
        tok.encode("a = 1\n"),
        max_tokens=4,
        stop_tokens=[],
        stop_strings=["\n"],
        forced_prefix="b = (\n",
    )
    assert r.forced_tokens >= 1 and "\n" not in r.text


def test_no_forced_text_is_plain_greedy(model: Model) -> None:
    tok = model.tokenizer
    assert tok is not None
    prompt = tok.encode("def f(x):\n")
    assert generate(model.session(), prompt, max_tokens=5, stop_tokens=[]).tokens == _constrained_reference(
        model, prompt, b"", 5
    )
