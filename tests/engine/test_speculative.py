"""Draft-verify decoding gives exactly the target's own greedy tokens, whatever the draft proposes."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver.engine import Model
from pyserver.engine.generate import generate
from pyserver.engine.speculative import speculative_greedy
from tests.support.builders import random_model, write_gguf


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, Model]:
    d = tmp_path_factory.mktemp("spec")
    big = random_model(np.random.default_rng(7), "bitnet", "TQ2_0", n_layer=3, vocab=320)
    small = random_model(np.random.default_rng(8), "bitnet", "TQ2_0", n_layer=1, vocab=320)
    big.token_embd[-5:] = 0.0  # specials never win: runs go the full length
    return Model.load(write_gguf(big, d / "big.gguf")), Model.load(write_gguf(small, d / "small.gguf"))


def greedy(model: Model, prompt: list[int], n: int, stops: list[int]) -> list[int]:
    return generate(model.session(), prompt, max_tokens=n, stop_tokens=stops).tokens


@pytest.mark.parametrize("k", [1, 3, 8])
def test_equals_the_targets_greedy_output(models: tuple[Model, Model], k: int) -> None:
    big, small = models
    prompt = [5, 9, 33, 101, 7]
    r = speculative_greedy(big.session(), small.session(), prompt, max_tokens=40, k=k)
    assert r.tokens == greedy(big, prompt, 40, []) and r.stop_reason == "max_tokens"
    assert r.rounds <= 40 and 0 <= r.accepted + r.rejected <= r.drafted


def test_a_perfect_draft_is_always_accepted(models: tuple[Model, Model]) -> None:
    big, _ = models
    prompt = [11, 12, 13]
    r = speculative_greedy(big.session(), big.session(), prompt, max_tokens=33, k=4)
    assert r.tokens == greedy(big, prompt, 33, []) and r.acceptance == 1.0
    # After the prefill's token, each round gives the target's token plus 4 accepted drafts: 5 tokens per round,
    # 7 rounds for the 32 after the first (the last round's 3 spare drafts are never checked).
    assert (r.rounds, r.drafted, r.accepted, r.rejected) == (7, 28, 25, 0)


def test_stop_tokens_end_it_like_the_target(models: tuple[Model, Model]) -> None:
    big, small = models
    prompt = [21, 22, 23]
    full = greedy(big, prompt, 30, [])
    stop = full[10]
    r = speculative_greedy(big.session(), small.session(), prompt, max_tokens=30, k=4, stop_tokens=[stop])
    assert r.tokens == greedy(big, prompt, 30, [stop]) and r.stop_reason == "eos"


def test_mismatched_vocabularies_are_refused(
    models: tuple[Model, Model], tmp_path_factory: pytest.TempPathFactory
) -> None:
    big, _ = models
    other = Model.load(
        write_gguf(
            random_model(np.random.default_rng(9), "bitnet", "TQ2_0", n_layer=1, vocab=300),
            tmp_path_factory.mktemp("o") / "o.gguf",
        )
    )
    with pytest.raises(ValueError, match="vocabularies differ"):
        speculative_greedy(big.session(), other.session(), [1, 2], max_tokens=4)


def test_a_session_with_a_draft_generates_the_same_text(models: tuple[Model, Model]) -> None:
    """Generation (stop strings, forced prefix, budgets) drafts through session.draft with the same result."""
    from pyserver.engine.sampling import Sampler, SamplerConfig

    big, small = models
    prompt = [5, 9, 33, 101, 7]
    plain = generate(big.session(), prompt, max_tokens=30, stop_tokens=[], forced_prefix="de")
    s = big.session()
    s.draft, s.draft_k = small.session(), 2
    drafted = generate(s, prompt, max_tokens=30, stop_tokens=[], forced_prefix="de")
    assert (drafted.tokens, drafted.text) == (plain.tokens, plain.text)
    # Sampling too: a drafted token is only used when the target drew it itself.
    sampled = [
        generate(
            big.session(),
            prompt,
            max_tokens=20,
            stop_tokens=[],
            sampler=Sampler(SamplerConfig(temperature=0.8, seed=3)),
        ).tokens
    ]
    s2 = big.session()
    s2.draft = small.session()
    sampled.append(
        generate(
            s2, prompt, max_tokens=20, stop_tokens=[], sampler=Sampler(SamplerConfig(temperature=0.8, seed=3))
        ).tokens
    )
    assert sampled[0] == sampled[1]
