"""Draft-verify decoding gives exactly the target's own greedy tokens, whatever the draft proposes."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver.engine import Model
from pyserver.engine.generate import generate
from pyserver.engine.speculative import speculative_greedy
from tests.engine.builders import random_model, write_gguf


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
    assert r.rounds <= 40 and 0 <= r.accepted <= r.drafted


def test_a_perfect_draft_is_always_accepted(models: tuple[Model, Model]) -> None:
    big, _ = models
    prompt = [11, 12, 13]
    r = speculative_greedy(big.session(), big.session(), prompt, max_tokens=33, k=4)
    assert r.tokens == greedy(big, prompt, 33, []) and r.acceptance == 1.0
    # After the prefill's token, each round emits 4 accepted drafts + the target's own: 6 rounds reach 31 tokens,
    # the 7th drafts the 2 still wanted.
    assert (r.rounds, r.drafted, r.accepted) == (7, 26, 26)


def test_stop_tokens_end_it_like_the_target(models: tuple[Model, Model]) -> None:
    big, small = models
    prompt = [21, 22, 23]
    full = greedy(big, prompt, 30, [])
    stop = full[10]
    r = speculative_greedy(big.session(), small.session(), prompt, max_tokens=30, k=4, stop_tokens=[stop])
    assert r.tokens == greedy(big, prompt, 30, [stop]) and r.stop_reason == "eos"


def test_mismatched_vocabularies_are_refused(models: tuple[Model, Model], tmp_path_factory: pytest.TempPathFactory) -> None:
    big, _ = models
    other = Model.load(write_gguf(random_model(np.random.default_rng(9), "bitnet", "TQ2_0", n_layer=1, vocab=300),
                                  tmp_path_factory.mktemp("o") / "o.gguf"))
    with pytest.raises(ValueError, match="vocabularies differ"):
        speculative_greedy(big.session(), other.session(), [1, 2], max_tokens=4)
