"""Tokenizers from GGUF metadata and tokenizer.json: round trips of arbitrary text, special and FIM ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyserver.engine import Model
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.tokenizer import Tokenizer
from tests.support.builders import SPECIALS, random_model, write_gguf, write_safetensors_dir
from tests.support.fixtures import BITNET_CPP_GGUF

CODE = "def héllo(wörld):\n\treturn {'emoji': '🎉', \"cjk\": '漢字'}  # ok\r\n\n    \x00\x7f"


@pytest.fixture(scope="module")
def bpe_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, object]:
    m = random_model(np.random.default_rng(5), "bitnet", "TQ2_0", n_layer=1)
    path = write_gguf(m, tmp_path_factory.mktemp("t") / "t.gguf")
    return Tokenizer.from_gguf_metadata(GGUFFile(path).metadata), m.tokenizer


@pytest.fixture(scope="module")
def bpe(bpe_pair: tuple[Tokenizer, object]) -> Tokenizer:
    return bpe_pair[0]


@pytest.fixture(scope="module")
def spm() -> Tokenizer:
    return Tokenizer.from_gguf_metadata(GGUFFile(BITNET_CPP_GGUF).metadata)


def test_bpe_specials(bpe: Tokenizer) -> None:
    sp = bpe.special
    assert sp.has_fim and sp.eos == bpe.vocab_size - len(SPECIALS)
    assert (sp.fim_prefix, sp.fim_suffix, sp.fim_middle, sp.fim_sep) == tuple(
        bpe.vocab_size - len(SPECIALS) + i for i in range(1, 5)
    )
    # Control tokens written as text stay text.
    assert sp.fim_prefix not in bpe.encode("<|fim_prefix|>")
    assert bpe.decode([sp.fim_prefix, *bpe.encode("x = 1"), sp.eos]) == "x = 1"


def test_bpe_matches_the_tokenizer_that_made_the_vocabulary(bpe_pair: tuple[Tokenizer, object]) -> None:
    ours, original = bpe_pair
    for text in ("def add(a, b):\n    return a + b\n", CODE, "class Point:\n    pass"):
        assert ours.encode(text) == original.encode(text).ids  # type: ignore[attr-defined]
    assert len(ours.encode("def add(a, b):\n    return a + b\n")) <= 16


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_bpe_round_trip(bpe: Tokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_characters="\u2581", blacklist_categories=("Cs",)), max_size=200))
def test_sentencepiece_round_trip(spm: Tokenizer, text: str) -> None:
    # SentencePiece writes spaces as U+2581, so that one character cannot survive a round trip (as in llama.cpp).
    assert spm.decode(spm.encode(text)) == text


def test_sentencepiece_specials(spm: Tokenizer) -> None:
    assert (spm.special.bos, spm.special.eos, spm.special.add_bos) == (1, 2, True)
    assert spm.decode(spm.encode(CODE)) == CODE


def test_tokenizer_json_path(tmp_path: Path, rng: np.random.Generator) -> None:
    m = random_model(rng, "bitnet-b1.58", "I2_S", n_layer=1)
    model = Model.load(write_safetensors_dir(m, tmp_path / "hf", packed=True))
    tok = model.tokenizer
    assert tok.decode(tok.encode(CODE)) == CODE
    assert tok.special.has_fim and tok.special.fim_middle == tok.id_of("<|fim_middle|>")
    assert tok.special.fim_middle not in tok.encode("<|fim_middle|>")
