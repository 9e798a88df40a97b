"""Sessions: prefix reuse gives the logits of a fresh evaluation; truncation; cancellation; the int8 head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyserver.engine import Model
from tests.support.builders import random_model, write_gguf


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = random_model(np.random.default_rng(7), "bitnet", "TQ2_0", n_layer=2)
    return write_gguf(m, tmp_path_factory.mktemp("m") / "m.gguf")


def test_prefix_reuse_equals_fresh(model_path: Path, rng: np.random.Generator) -> None:
    model = Model.load(model_path)
    a = [int(t) for t in rng.integers(0, 300, size=30)]
    b = a[:22] + [int(t) for t in rng.integers(0, 300, size=9)]
    s = model.session()
    s.eval(a)
    reused = s.eval(b)
    assert s.tokens == b
    fresh = model.session().eval(b)
    np.testing.assert_allclose(reused, fresh, rtol=1e-5, atol=1e-5)
    # The same prompt again is served from the stored logits; a shorter prefix re-evaluates one token.
    np.testing.assert_array_equal(s.eval(b), reused)
    np.testing.assert_allclose(s.eval(b[:10]), model.session().eval(b[:10]), rtol=1e-5, atol=1e-5)
    assert len(s.tokens) == 10


def test_cancel_leaves_cache_consistent(model_path: Path, rng: np.random.Generator) -> None:
    model = Model.load(model_path)
    s = model.session()
    s.eval([1, 2, 3])
    s.cancel.set()
    assert s.append([4, 5]) is None
    assert s.tokens == [1, 2, 3] and s.cache.n_past == 3
    s.cancel.clear()
    np.testing.assert_allclose(s.eval([1, 2, 3, 4, 5]), model.session().eval([1, 2, 3, 4, 5]), rtol=1e-5, atol=1e-5)


def test_context_limit(model_path: Path) -> None:
    s = Model.load(model_path).session(n_ctx=8)
    s.append(list(range(8)))
    with pytest.raises(ValueError, match="context is full"):
        s.append([1])


@pytest.mark.parametrize("head", ["int4", "int8", "f32"])
def test_a_batch_of_tokens_gives_the_logits_of_one_at_a_time(
    model_path: Path, rng: np.random.Generator, head: str
) -> None:
    """Draft-verify relies on it: 2-8 new tokens (multi-token GEMV, multi-token head) give exactly the logits of
    appending them one by one."""
    model = Model.load(model_path, head=head)
    prompt = [int(t) for t in rng.integers(0, 300, size=12)]
    new = [int(t) for t in rng.integers(0, 300, size=8)]
    for n in (2, 3, 5, 8):
        batch = model.session()
        batch.eval(prompt)
        got = batch.append(new[:n], n_logits=n)
        single = model.session()
        single.eval(prompt)
        want = np.stack([single.append([t])[-1] for t in new[:n]])
        np.testing.assert_array_equal(got, want)
