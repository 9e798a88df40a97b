"""The only independent check of the I2_S reader: bitnet.cpp's own logits for its own file."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver.engine import Model
from tests.support.fixtures import BITNET_CPP_GGUF, FIXTURES


@pytest.mark.parametrize("head", ["f32", "int8"])
def test_reproduces_bitnet_cpp_logits(head: str) -> None:
    tokens = [int(t) for t in (FIXTURES / "bitnet-b158-i2s-tiny.tokens.txt").read_text().split()]
    ref = np.fromfile(FIXTURES / "bitnet-b158-i2s-tiny.logits.f32", dtype=np.float32).reshape(len(tokens), -1)
    model = Model.load(BITNET_CPP_GGUF, head=head)
    assert model.config.arch == "bitnet-b1.58" and model.config.act == "relu2"
    got = model.session().append(tokens, n_logits=len(tokens))
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.999
    assert (got.argmax(axis=1) == ref.argmax(axis=1)).mean() >= 0.95
