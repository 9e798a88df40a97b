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


# ---- bench speculative --arch qwen3: the costs of draft-verify between two Bonsai sizes ----------------------------
def test_break_even_acceptance_by_hand() -> None:
    """k = 1, a verify pass of 2 tokens at 1.5 steps, a draft step at 0.1: (1 + a) / 1.6 = 1 at a = 0.6; a verify pass
    dearer than a round's tokens can ever pay back never pays."""
    from pyserver.bench.speculative import _expected_speedup, break_even_acceptance

    assert break_even_acceptance(1, 1.0, 1.5, 0.1) == pytest.approx(0.6, abs=1e-3)
    assert _expected_speedup(0.6, 1, 1.0, 1.5, 0.1) == pytest.approx(1.0)
    # k = 2: (1 + a + a^2) / (1.8 + 0.2) = 1 at a = (-1 + sqrt(5)) / 2
    assert break_even_acceptance(2, 1.0, 1.8, 0.1) == pytest.approx((5**0.5 - 1) / 2, abs=1e-3)
    assert break_even_acceptance(1, 1.0, 1.9, 0.2) is None  # at most 2 tokens for 2.1 steps


def test_bonsai_pair_report_on_tiny_qwen3_models() -> None:
    """The report's parts agree with each other on two random group-scaled Qwen3 models (the path the 1.7B / 8B pair
    takes), and draft-verify on them gives the target's own greedy tokens for every k."""
    from pyserver.bench.model import SHAPES, build_random_model
    from pyserver.bench.speculative import _expected_speedup, _random_pair

    target = build_random_model(SHAPES["qwen3-tiny"], "Q2_0")
    draft = build_random_model(SHAPES["qwen3-tiny"], "Q2_0", seed=1)
    assert target._weights.output_ternary is not None  # a Bonsai-like ternary head
    ks, acceptances = (1, 2, 4), (0.5, 0.9)
    r = _random_pair(target, draft, {"target": "t"}, ks, 12, acceptances, reps=2)
    step, draft_step = r["target_step_ms"], r["draft_step_ms"]
    pays = []
    for k in ks:
        row = r[f"k{k}"]
        assert row["measured"]["output_equal_to_plain_greedy"] is True
        verify = row[f"verify_{k + 1}_tokens_ms"]
        assert row["verify_cost_in_steps"] == pytest.approx(
            verify / step, rel=0.03, abs=0.006
        )  # from ms rounded to 1 us
        for a in acceptances:
            want = _expected_speedup(a, k, step, verify, draft_step)
            assert row["expected_speedup_at_acceptance"][str(a)] == pytest.approx(want, rel=0.03, abs=0.006)
        if row["pays_from_acceptance"] is not None:
            pays.append(row["pays_from_acceptance"])
            assert _expected_speedup(row["pays_from_acceptance"], k, step, verify, draft_step) == pytest.approx(
                1.0, rel=0.03
            )
    for a in acceptances:
        best = r["best_k_at_acceptance"][str(a)]
        assert best["speedup"] == max(r[f"k{k}"]["expected_speedup_at_acceptance"][str(a)] for k in ks)
    assert r["pays_from_acceptance"] == (min(pays) if pays else None)
