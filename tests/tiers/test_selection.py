"""Tier selection over simulated machines (4-64 GiB, 2-16 cores), against hand-computed expectations."""

from __future__ import annotations

import pytest

from pyserver.tiers.hardware import DEFAULT_EFFICIENCY, GIB, HardwareProfile
from pyserver.tiers.registry import Registry
from pyserver.tiers.selection import choose, predicted_tps, ram_budget

ALL = (
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
    # The engine's measured bytes per decoded token at the 2B4T shape (bench model): 686 MB.
    assert registry.by_id("bitnet-b1.58-2b4t").shape.bytes_per_token() == pytest.approx(686e6, rel=0.01)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "total,avail,cores,bw,tier,model",
    [
        (4, 3, 2, 20.0, "shipped", "ryzanstein-code"),  # budget 1 GiB: even 2B4T (1.7 GiB) does not fit
        # A completion = 16 prompt tokens at 100 GMAC/s per core / the projections' parameters + 12 tokens at
        # 0.55 x bandwidth / bytes per token; at most 600 ms.
        # 2B4T fits (budget 4 GiB) but 16 / (200e9 / 2.084e9) + 12 / (0.55 x 25 / 0.685) = 167 + 598 = 765 ms
        (8, 6, 2, 25.0, "shipped", "ryzanstein-code"),
        (8, 6, 4, 20.0, "shipped", "ryzanstein-code"),  # 2B4T: 83 + 748 = 831 ms
        (16, 12, 8, 40.0, "3B", "bitnet-b1.58-2b4t"),  # 415 ms; 7B: 16 / 120.3 + 12 / 11.8 = 1,150 ms
        (32, 28, 16, 80.0, "7B", "falcon3-7b-instruct-1.58bit"),  # 575 ms; 10B: 798 ms
        (64, 60, 16, 120.0, "13B", "falcon3-10b-instruct-1.58bit"),  # 563 ms, 4.3 GiB of a 38 GiB budget
        (64, 3, 16, 120.0, "shipped", "ryzanstein-code"),  # a busy machine: only 1 GiB to spare now
    ],
)
def test_choice(registry: Registry, total: float, avail: float, cores: int, bw: float, tier: str, model: str) -> None:
    d = choose(registry, machine(total, avail, cores, bw), present=ALL)
    assert (d.tier, d.model, d.use_now) == (tier, model, model)
    assert any("RAM budget" in r for r in d.reasons)


def test_budget_and_speed_formulas(registry: Registry) -> None:
    hw = machine(16, 12, 8, 40.0)
    assert ram_budget(hw) == int(0.6 * 16 * GIB)  # the 60% cap binds before available - 2 GiB
    spec = registry.by_id("falcon3-7b-instruct-1.58bit")
    assert spec is not None
    assert predicted_tps(spec, hw) == pytest.approx(DEFAULT_EFFICIENCY * 40e9 / spec.shape.bytes_per_token())


def test_absent_models_are_recommended_not_used(registry: Registry) -> None:
    d = choose(registry, machine(32, 28, 16, 80.0), present=["bitnet-b1.58-2b4t"])
    assert d.model == "falcon3-7b-instruct-1.58bit" and d.use_now == "bitnet-b1.58-2b4t"
    assert any("download falcon3-7b" in r for r in d.reasons)
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
