"""The meta-backend: timed choices per shape x packing, cached per engine build and CPU, applied at load; and the
trit statistics recorded for every projection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyserver import native
from pyserver.engine import autotune
from pyserver.engine.model import Model
from tests.support.builders import random_model, write_gguf


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(autotune, "WORKING_SET", 1 << 20)  # small: the test checks the bookkeeping, not speed
    return tmp_path / "ryzanstein" / "kernels.json"


def test_choices_are_timed_once_and_cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isa = str(native.cpu_info()["auto"])
    first = autotune.choose({("TQ2_0", 64, 512)}, isa)[("TQ2_0", 64, 512)]
    simd = [i for i in native.available_isas() if i != "scalar"]
    assert set(first.gbs) == set(first.gemm_gmacs) == {f"{i} {lay}" for i in simd for lay in autotune.LAYOUTS}
    assert first.layout in autotune.LAYOUTS and all(v > 0 for v in first.gbs.values())
    mine = {lay: first.gbs[f"{isa} {lay}"] for lay in autotune.LAYOUTS}
    assert mine[first.layout] >= max(mine.values()) * (1 - autotune.TIE)
    assert cache.is_file()

    def no_timing(*args: object) -> autotune.KernelChoice:
        raise AssertionError("measured again")

    monkeypatch.setattr(autotune, "measure", no_timing)
    assert autotune.choose({("TQ2_0", 64, 512)}, isa)[("TQ2_0", 64, 512)] == first
    assert autotune.cached_choices() == [first]
    monkeypatch.setattr(autotune, "engine_version", lambda: "another build")
    assert autotune.cached_choices() == []  # another engine's timings say nothing about this one


def test_pick_prefers_prefill_only_among_equal_decoders() -> None:
    gbs = {"avx2 file": 10.0, "avx2 decode": 20.0, "avx2 rows16": 19.5, "avx512 rows16": 40.0}
    assert autotune.pick(gbs, {"avx2 decode": 100.0, "avx2 rows16": 130.0}, "avx2") == "rows16"  # within 5%
    assert autotune.pick(gbs, {"avx2 decode": 130.0, "avx2 rows16": 100.0}, "avx2") == "decode"
    gbs["avx2 rows16"] = 15.0  # decodes 25% slower: prefill does not matter
    assert autotune.pick(gbs, {"avx2 decode": 100.0, "avx2 rows16": 300.0}, "avx2") == "decode"


@pytest.mark.parametrize("layout", ["file", "decode", "rows16"])
def test_load_applies_the_choice_and_counts_trits(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rng: np.random.Generator, layout: str
) -> None:
    def fixed(fmt: str, rows: int, cols: int, isa: str) -> autotune.KernelChoice:
        return autotune.KernelChoice(fmt, rows, cols, native.num_threads(), isa, layout, {})

    monkeypatch.setattr(autotune, "measure", fixed)
    m = random_model(rng, "bitnet", "TQ2_0", n_layer=2)
    model = Model.load(write_gguf(m, tmp_path / "m.gguf"), layout="auto")
    assert {s.packing for s in model.tensor_stats} == {{"file": "TQ2_0", "decode": "I2_S4", "rows16": "I2_R16"}[layout]}
    by_name = {s.name: s for s in model.tensor_stats}
    for i in range(2):
        for name, codes in m.codes[i].items():
            s = by_name[f"blk.{i}.{name}"]
            assert (s.minus, s.zero, s.plus) == tuple(int((codes == v).sum()) for v in (-1, 0, 1))
            p = np.array([s.minus, s.zero, s.plus]) / codes.size
            assert s.trit_entropy == pytest.approx(float(-(p * np.log2(p)).sum()))
            assert s.zero_fraction == pytest.approx(float((codes == 0).mean()))
