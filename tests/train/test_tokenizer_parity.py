"""The training tokenizer (models/train/tokenizer.py) and the engine's tokenizer rebuilt from the GGUF metadata the
export writes encode held-out code identically, token for token."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest

from models.train import tokenizer as T
from pyserver.bench.stdlib_corpus import source_files
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.gguf_writing import SPECIALS, bpe_vocabulary
from pyserver.engine.tokenizer import PRE_TOKENIZER_REGEX, Tokenizer
from pyserver.models import default_model_path

ROOT = Path(__file__).resolve().parents[2]
CORPUS_TOKENIZER = ROOT / "build" / "corpus" / "tokenizer.json"
TRICKY = [
    "def f(x):\n\treturn {'π': x ** 2}  # naïve ✓\r\n\n    \x00\x7f",
    "    \n\n        return 1234567 + 0x1F\n\n\n",
    'x = "<|fim_prefix|><|endoftext|>"  # control tokens spelled in text stay text\n',
    "class A:\n    def __init__(self):\n        self._snake_case_name = __name__\n",
    "",
    " ",
    "\n",
]


def engine_tokenizer(tok, tmp_path: Path) -> Tokenizer:
    """The engine's tokenizer, from a GGUF carrying the training tokenizer's metadata as the export writes it."""
    path = tmp_path / "tok.gguf"
    w = gguf.GGUFWriter(str(path), "bitnet")
    T.add_gguf_metadata(w, tok)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Tokenizer.from_gguf_metadata(GGUFFile(path).metadata, path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A small tokenizer trained the way the shipped one is, on standard-library training files."""
    texts = [f.text for f in source_files("train")[:400]]
    return T.train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "tokenizer.json", vocab_size=2048)


def held_out_texts() -> list[str]:
    return [f.text for f in source_files("eval")][:60]


def test_constants_agree_with_the_engine() -> None:
    assert T.SPECIALS == SPECIALS
    assert PRE_TOKENIZER_REGEX[T.PRE] == T.PRE_REGEX


def test_engine_encodes_like_training(trained, tmp_path: Path) -> None:
    engine = engine_tokenizer(trained, tmp_path)
    texts = held_out_texts() + TRICKY
    assert sum(map(len, texts)) > 200_000
    for text in texts:
        assert engine.encode(text) == trained.encode(text, add_special_tokens=False).ids
        assert engine.decode(engine.encode(text)) == text
    sp = engine.special
    assert (sp.eos, sp.fim_prefix, sp.fim_suffix, sp.fim_middle, sp.fim_sep) == tuple(range(2043, 2048))


def test_line_starts_are_token_boundaries(trained) -> None:
    """What the FIM data relies on: a file cut at the start of a non-blank line encodes as that cut of the file's
    encoding (a run of blank lines is one token, so a cut inside the run is not a boundary)."""
    for text in held_out_texts()[:10]:
        ids = trained.encode(text, add_special_tokens=False).ids
        starts = [i + 1 for i, c in enumerate(text) if c == "\n" and text[i + 1 :].split("\n", 1)[0].strip()]
        for cut in starts[:: max(1, len(starts) // 5)]:
            head = trained.encode(text[:cut], add_special_tokens=False).ids
            tail = trained.encode(text[cut:], add_special_tokens=False).ids
            assert head + tail == ids


def test_indentation_runs_are_tokens(trained) -> None:
    pieces = {trained.id_to_token(i) for i in range(trained.get_vocab_size())}
    for n in (3, 7, 11):  # 4, 8, 12 spaces of indentation = a run + a space-led word
        assert "\u0120" * n in pieces


def test_token_bytes_decode_exactly(trained) -> None:
    table = T.token_bytes(trained)
    text = held_out_texts()[1]
    ids = trained.encode(text, add_special_tokens=False).ids
    assert b"".join(table[i] for i in ids).decode("utf-8") == text


@pytest.mark.skipif(not CORPUS_TOKENIZER.exists(), reason="no corpus built (make corpus)")
def test_shipped_model_carries_the_corpus_tokenizer() -> None:
    """When the shipped model was trained on this corpus, its GGUF tokenizer is the corpus tokenizer."""
    model = default_model_path()
    if model is None:
        pytest.skip("no shipped model")
    meta = GGUFFile(model).metadata
    corpus = T.load(CORPUS_TOKENIZER)
    tokens, _, _ = bpe_vocabulary(corpus)
    if meta.get("tokenizer.ggml.pre") != T.PRE or list(meta["tokenizer.ggml.tokens"]) != tokens:
        pytest.skip("the shipped model was not trained on this corpus")
    engine = Tokenizer.from_gguf_metadata(meta, model)
    for text in held_out_texts()[:20] + TRICKY:
        assert engine.encode(text) == corpus.encode(text, add_special_tokens=False).ids
    assert json.loads(corpus.to_str())["pre_tokenizer"]["type"] == "Sequence"
