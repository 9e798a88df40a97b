"""The model pool: within the RAM budget, least recently used idle model evicted, idle models unloaded after the
configured time and reloaded on the next use."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyserver.tiers.pool import MemoryBudgetError, ModelPool

SIZES = {"small": 1, "mid": 3, "big": 6}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(budget: int, idle: float = 60.0) -> tuple[ModelPool, Clock, list[str]]:
    clock, loaded = Clock(), []

    def loader(p: Path) -> str:
        loaded.append(p.name)
        return f"model:{p.name}"

    return ModelPool(budget, idle, loader, size_of=lambda m: SIZES[m.split(":")[1]], clock=clock), clock, loaded


def test_lru_eviction_within_the_budget() -> None:
    pool, clock, loaded = make(budget=8)
    for name in ("small", "mid"):
        clock.t += 1
        with pool.use(Path(name)) as m:
            assert m == f"model:{name}"
    clock.t += 1
    with pool.use(Path("small")):  # small is now the most recent
        pass
    with pool.use(Path("big")):  # 1 + 3 + 6 > 8: mid (least recent) goes, small stays
        assert sorted(p.name for p in pool.loaded()) == ["big", "small"] and pool.used_bytes == 7
    assert loaded == ["small", "mid", "big"]


def test_models_in_use_are_never_evicted() -> None:
    pool, _, _ = make(budget=8)
    with pool.use(Path("mid")), pytest.raises(MemoryBudgetError, match="all in use"):
        with pool.use(Path("big")):
            pass
    with pytest.raises(MemoryBudgetError, match="more than the memory budget"):
        with pool.use(Path("big"), expected_bytes=9):
            pass


def test_idle_models_unload_and_reload_transparently() -> None:
    pool, clock, loaded = make(budget=8, idle=600)
    with pool.use(Path("mid")):
        clock.t += 1000  # in use: never idle
        assert pool.unload_idle() == []
    clock.t += 599
    assert pool.unload_idle() == []
    clock.t += 2
    assert pool.unload_idle() == [Path("mid")] and pool.loaded() == []
    with pool.use(Path("mid")) as m:
        assert m == "model:mid"
    assert loaded == ["mid", "mid"] and pool.loads == 2
