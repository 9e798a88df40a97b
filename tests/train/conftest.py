"""A small corpus in the format `make corpus` writes (build/corpus/), made from standard-library files in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.train import tokenizer as T
from models.train.corpus import write_corpus
from pyserver.bench.stdlib_corpus import source_files

VOCAB = 2048


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    train = [f.text for f in source_files("train")[:300]]
    valid = [f.text for f in source_files("eval")[:30]]
    tok = T.train_tokenizer(train, out / "tokenizer.json", VOCAB)
    enc = lambda texts: [np.asarray(e.ids, np.uint16) for e in tok.encode_batch(texts, add_special_tokens=False)]  # noqa: E731
    write_corpus(out, {"train": enc(train), "valid": enc(valid)}, T.special_ids(tok)["<|endoftext|>"], VOCAB)
    return out
