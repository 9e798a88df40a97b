"""bench quality's next-token figures against the numpy reference forward pass on a small random model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pyserver.bench.quality import next_token_scores
from pyserver.engine import Model
from tests.support.builders import random_model, write_gguf
from tests.support.reference_model import forward


def test_bits_and_accuracy_match_reference(tmp_path: Path) -> None:
    m = random_model(np.random.default_rng(4), "bitnet", "TQ2_0", n_layer=1)
    model = Model.load(write_gguf(m, tmp_path / "m.gguf"), head="f32")
    tok = model.tokenizer
    assert tok is not None and tok.special.eos is not None
    text = "def add(a, b):\n    return a + b\n\nclass Point:\n    pass\n"
    ids = tok.encode(text)
    got = next_token_scores(model, [(ids, text)], None)
    logits = forward(m.cfg, m.reference(), [tok.special.eos] + ids[:-1])  # row i predicts ids[i]
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    bits = -logp[np.arange(len(ids)), ids].sum() / math.log(2)
    assert got["tokens"] == len(ids) and got["bytes"] == len(text.encode())
    assert abs(got["model"]["bits_per_byte"] - bits / len(text.encode())) < 2e-3
    assert got["model"]["next_token_accuracy"] == round(float((logits.argmax(axis=1) == ids).mean()), 4)
