"""Tier selection over simulated machines (4-64 GiB, 2-16 cores), against hand-computed expectations."""

from __future__ import annotations

import pytest

from pyserver.tiers.hardware import DEFAULT_EFFICIENCY, GIB, HardwareProfile
from pyserver.tiers.registry import Registry
from pyserver.tiers.selection import choose, predicted_tps, ram_budget

ALL = (
    "ternary-bonsai-1.7b",
    "ternary-bonsai-4b",
    "ternary-bonsai-8b",
    "bitnet-b1.58-2b4t",
    "falcon3-3b-instruct-1.58bit",
    "falcon3-7b-instruct-1.58bit",
    "llama3-8b-1.58-100b-tokens",
    "falcon3-10b-instruct-1.58bit",
)


def machine(total_gib: float, available_gib: float, cores: int, bandwidth: float) -> HardwareProfile:
    # Prefill: 100 GMAC/s per core (ternary multiply-accumulates of the projections).
    return HardwareProfile(
        int(total_gib * GIB), int(available_gib * GIB), cores, cores, ("avx2",), bandwidth, prefill_gmacs=100.0 * cores
    )


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def test_registry_shapes_give_the_published_sizes(registry: Registry) -> None:
    # The model cards' counts (2.4B, 3.23B, 7.46B, 8.03B, 10.3B; the shipped model's exact count) against the
    # shapes: a wrong dimension in the registry shows here.
    for m in registry.models:
        assert m.shape.n_params == pytest.approx(m.published_params, rel=0.01), m.id
    # Ternary-Bonsai: the cards' Q2_0 g128 file sizes (436 MiB, 1,020 MiB, 2.18 GB) against the shapes at 2.125 bits
    # a weight, embedding and head included (the 8B's head is a second table).
    bonsai = [m for m in registry.models if m.ternary_tables]
    assert [m.id for m in bonsai] == ["ternary-bonsai-1.7b", "ternary-bonsai-4b", "ternary-bonsai-8b"]
    for m in bonsai:
        assert m.download_bytes() == pytest.approx(m.published_file_bytes, rel=0.01), m.id
    # 1.7B by hand: 28 x (2 x 2048^2 + 2 x 1024 x 2048 + 3 x 6144 x 2048) = 1,409,286,144 projection weights and
    # 151,936 x 2048 = 311,164,928 in the tied table, each 1/4 + 2/128 bytes: 456,994,816 bytes a token.
    b17 = registry.by_id("ternary-bonsai-1.7b")
    assert b17 is not None and b17.shape.ternary_params == 1_409_286_144
    assert b17.bytes_per_token() == 456_994_816 and b17.download_bytes() == 456_994_816
    # Resident with 2,048 tokens of f32 KV cache (2 x 28 x 1024 x 2048 x 4 = 469,762,048): 1.1 x (projections
    # 374,341,632 + head copy and embedding 2 x 82,653,184 + KV) = 1,110,351,052.
    assert b17.resident_bytes(2048) == 1_110_351_052
    # The engine's measured bytes per decoded token at the 2B4T shape (bench model): 686 MB.
    assert registry.by_id("bitnet-b1.58-2b4t").shape.bytes_per_token() == pytest.approx(686e6, rel=0.01)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "total,avail,cores,bw,tier,model,completion",
    [
        # budget 1 GiB: even Ternary-Bonsai-1.7B (1.03 GiB with a 2K-token cache) does not fit
        (4, 3, 2, 20.0, "shipped", "ryzanstein-code", "ryzanstein-code"),
        # A completion = 16 prompt tokens at 100 GMAC/s per core / the projections' parameters + 12 tokens at
        # 0.55 x bandwidth / bytes per token; at most 600 ms.
        # Bonsai-1.7B on 2 cores at 25 GB/s: 16 / (200e9 / 1.409e9) + 12 / (0.55 x 25e9 / 457.0e6) = 113 + 399 =
        # 512 ms; 2B4T there: 16 / (200e9 / 2.084e9) + 12 / (0.55 x 25 / 0.685) = 167 + 598 = 765 ms (too slow: the
        # shipped model served completions on such a laptop before)
        (8, 6, 2, 25.0, "3B", "ternary-bonsai-1.7b", "ternary-bonsai-1.7b"),
        # 17 GB/s (one channel): 113 + 12 / (0.55 x 17 / 0.457) = 113 + 587 = 699 ms, too slow: the shipped model
        (8, 6, 2, 17.0, "shipped", "ryzanstein-code", "ryzanstein-code"),
        (8, 6, 4, 20.0, "3B", "ternary-bonsai-1.7b", "ternary-bonsai-1.7b"),  # 56 + 499 = 555 ms
        # Bonsai-4B (the 7B tier's first): 16 / (800e9 / 3.633e9) + 12 / (0.55 x 40 / 1.068) = 73 + 583 = 655 ms
        (16, 12, 8, 40.0, "3B", "ternary-bonsai-1.7b", "ternary-bonsai-1.7b"),
        # 4B: 16 / (1600e9 / 3.633e9) + 12 / (0.55 x 80 / 1.068) = 36 + 291 = 328 ms; Bonsai-8B: 16 / (1600e9 /
        # 6.95e9) + 12 / (0.55 x 80 / 2.010) = 70 + 548 = 618 ms, too slow (Falcon3-7B's 575 ms would make it 7B
        # either way; Bonsai-4B is that tier's first)
        (32, 28, 16, 80.0, "7B", "ternary-bonsai-4b", "ternary-bonsai-1.7b"),
        # 8B: 70 + 12 / (0.55 x 120 / 2.010) = 70 + 365 = 435 ms, 2.85 GiB of a 38 GiB budget
        (64, 60, 16, 120.0, "13B", "ternary-bonsai-8b", "ternary-bonsai-1.7b"),
        (64, 3, 16, 120.0, "shipped", "ryzanstein-code", "ryzanstein-code"),  # a busy machine: only 1 GiB to spare now
    ],
)
def test_choice(
    registry: Registry, total: float, avail: float, cores: int, bw: float, tier: str, model: str, completion: str
) -> None:
    d = choose(registry, machine(total, avail, cores, bw), present=ALL)
    assert (d.tier, d.model, d.use_now, d.completion_model) == (tier, model, model, completion)
    assert d.first_download is None  # a published model serves completions already (or none qualifies)
    assert any("RAM budget" in r for r in d.reasons)


@pytest.mark.parametrize(
    "total,avail,cores,bw,first",
    [
        (8, 6, 2, 25.0, "ternary-bonsai-1.7b"),  # 512 ms (above)
        (64, 60, 16, 120.0, "ternary-bonsai-1.7b"),  # the tier is 13B, but the 1.7B is the smallest download
        (8, 6, 2, 17.0, None),  # 699 ms: nothing published serves completions here
        (4, 3, 2, 20.0, None),  # nothing fits
    ],
)
def test_first_run_recommends_the_smallest_download_that_serves_completions(
    registry: Registry, total: float, avail: float, cores: int, bw: float, first: str | None
) -> None:
    d = choose(registry, machine(total, avail, cores, bw))
    assert d.first_download == first and d.completion_model == "ryzanstein-code"
    assert d.to_json()["first_download"] == first
    assert any(r.startswith(f"first download: {first} (0.46 GB") for r in d.reasons) == (first is not None)


def test_budget_and_speed_formulas(registry: Registry) -> None:
    hw = machine(16, 12, 8, 40.0)
    assert ram_budget(hw) == int(0.6 * 16 * GIB)  # the 60% cap binds before available - 2 GiB
    spec = registry.by_id("falcon3-7b-instruct-1.58bit")
    assert spec is not None
    assert predicted_tps(spec, hw) == pytest.approx(DEFAULT_EFFICIENCY * 40e9 / spec.shape.bytes_per_token())


def test_absent_models_are_recommended_not_used(registry: Registry) -> None:
    d = choose(registry, machine(32, 28, 16, 80.0), present=["bitnet-b1.58-2b4t"])
    assert d.model == "ternary-bonsai-4b" and d.use_now == "bitnet-b1.58-2b4t"
    assert any("download ternary-bonsai-4b" in r for r in d.reasons)
    assert d.first_download is None  # 2B4T serves completions (208 ms) meanwhile
    nothing = choose(registry, machine(32, 28, 16, 80.0))
    assert nothing.use_now == nothing.completion_model == nothing.refactor_model == "ryzanstein-code"


def test_task_routing(registry: Registry) -> None:
    # 2B4T and the 10B present on a fast machine: completions on the fastest that meets the budget, refactors on
    # the largest that fits.
    d = choose(registry, machine(64, 60, 16, 120.0), present=["bitnet-b1.58-2b4t", "falcon3-10b-instruct-1.58bit"])
    assert (d.completion_model, d.refactor_model) == ("bitnet-b1.58-2b4t", "falcon3-10b-instruct-1.58bit")
    # On a slow machine the 10B is still the refactor model (4 tokens/s is enough there), never the completion one.
    d = choose(registry, machine(32, 28, 4, 20.0), present=["bitnet-b1.58-2b4t", "falcon3-10b-instruct-1.58bit"])
    assert d.completion_model == "ryzanstein-code" and d.refactor_model == "falcon3-10b-instruct-1.58bit"
    # With Bonsai present: completions on the 1.7B; refactors on the largest tier's best present model (the 13B
    # tier lists Bonsai-8B first, ahead of the larger Falcon3-10B with no code score).
    every = choose(registry, machine(64, 60, 16, 120.0), present=ALL)
    assert (every.completion_model, every.refactor_model) == ("ternary-bonsai-1.7b", "ternary-bonsai-8b")
    some = ["ternary-bonsai-1.7b", "falcon3-10b-instruct-1.58bit"]
    assert choose(registry, machine(64, 60, 16, 120.0), present=some).refactor_model == "falcon3-10b-instruct-1.58bit"
