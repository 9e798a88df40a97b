"""Sampling rules and the generation loop's stop conditions."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver.engine import Model
from pyserver.engine.generate import Generation, generate
from pyserver.engine.sampling import Sampler, SamplerConfig
from tests.support.builders import random_model, write_gguf


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    m = random_model(np.random.default_rng(3), "bitnet", "TQ2_0")
    return Model.load(write_gguf(m, tmp_path_factory.mktemp("m") / "m.gguf"))


def test_greedy_and_penalty() -> None:
    logits = np.array([1.0, 3.0, 2.0, -1.0], np.float32)
    assert Sampler()(logits) == 1
    # 3.0 / 2 = 1.5 < 2.0: the repeated token loses; negative logits are pushed further down.
    s = Sampler(SamplerConfig(repetition_penalty=2.0))
    assert s(logits, history=[1]) == 2
    np.testing.assert_allclose(s.penalize(logits, [1, 3]), [1.0, 1.5, 2.0, -2.0])


def test_top_k_and_top_p_restrict_support() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    k2 = Sampler(SamplerConfig(temperature=1.0, top_k=2, seed=0))
    assert {k2(logits) for _ in range(300)} == {0, 1}
    p = Sampler(SamplerConfig(temperature=1.0, top_p=0.8, seed=0))  # 0.5 + 0.3 reaches 0.8
    assert {p(logits) for _ in range(300)} == {0, 1}
    hot = Sampler(SamplerConfig(temperature=1.0, seed=0))
    counts = np.bincount([hot(logits) for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.03)


def test_greedy_generation_matches_manual_loop(model: Model) -> None:
    prompt = [5, 6, 7, 8]
    r = generate(model.session(), prompt, max_tokens=12, stop_tokens=[])
    s = model.session()
    logits, manual = s.eval(prompt), []
    for _ in range(12):
        manual.append(int(np.argmax(logits)))
        logits = s.append([manual[-1]])[-1]
    assert r.tokens == manual and r.stop_reason == "max_tokens"
    assert r.text == model.tokenizer.decode(manual)


def test_stop_token_and_stop_string(model: Model) -> None:
    prompt = [5, 6, 7, 8]
    full = generate(model.session(), prompt, max_tokens=12, stop_tokens=[])
    stopped = generate(model.session(), prompt, max_tokens=12, stop_tokens=[full.tokens[3]])
    assert stopped.stop_reason == "eos" and stopped.tokens == full.tokens[: full.tokens.index(full.tokens[3])]
    needle = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    if not needle.strip():
        pytest.skip("generated text has no usable stop string")
    g = Generation(model.session(), prompt, max_tokens=12, stop_tokens=[], stop_strings=[needle])
    streamed = "".join(g)
    assert g.result.stop_reason == "stop_string"
    assert streamed == g.result.text == full.text[: full.text.index(needle)]


def test_time_budget_and_should_stop(model: Model) -> None:
    r = generate(model.session(), [1, 2, 3], max_tokens=10_000, stop_tokens=[], time_budget_s=0.0)
    assert r.stop_reason == "time_budget" and len(r.tokens) == 1
    calls = iter(range(100))
    r = generate(model.session(), [1, 2, 3], max_tokens=100, stop_tokens=[], should_stop=lambda: next(calls) >= 4)
    assert r.stop_reason == "cancelled" and len(r.tokens) == 3


def test_reuses_prefix_between_calls(model: Model) -> None:
    s = model.session()
    generate(s, [1, 2, 3, 4, 5, 6], max_tokens=3, stop_tokens=[])
    r = generate(s, [1, 2, 3, 4, 5, 6, 9], max_tokens=3, stop_tokens=[])
    assert r.reused_tokens == 6
