"""The native Hamming scan against numpy's bitwise_count, on every ISA path, and its input checks."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver import native

ISAS = [i for i in ("scalar", "avx2") if i in native.available_isas()]


def reference(sigs: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[list, list]:
    idx = np.arange(len(sigs)) if rows is None else rows
    d = np.bitwise_count(sigs[idx] ^ q).sum(1)
    order = np.lexsort((idx, d))[:k]
    return idx[order].tolist(), d[order].tolist()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n,nbytes,k", [(1, 8, 1), (1000, 48, 10), (5003, 16, 50), (300, 64, 400)])
def test_topk_matches_numpy(isa: str, n: int, nbytes: int, k: int) -> None:
    rng = np.random.default_rng(n)
    sigs = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    sigs[n // 2 :] = sigs[: n - n // 2]  # duplicates: ties must come out by row
    q = rng.integers(0, 256, nbytes, dtype=np.uint8)
    rows, dist = native.hamming_topk(sigs, q, k, isa=isa)
    assert (rows.tolist(), dist.tolist()) == reference(sigs, q, k)
    subset = rng.choice(n, size=max(1, n // 3), replace=False).astype(np.int64)
    rows, dist = native.hamming_topk(sigs, q, k, subset, isa=isa)
    assert (rows.tolist(), dist.tolist()) == reference(sigs, q, k, subset)


@pytest.mark.parametrize("isa", ISAS)
def test_nearest_centroid(isa: str) -> None:
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, 256, (777, 48), dtype=np.uint8)
    cents = rng.integers(0, 256, (13, 48), dtype=np.uint8)
    labels, dist = native.hamming_nearest(sigs, cents, isa=isa)
    d = np.bitwise_count(sigs[:, None, :] ^ cents[None]).sum(2)
    assert labels.tolist() == d.argmin(1).tolist() and dist.tolist() == d.min(1).tolist()


def test_bad_input() -> None:
    sigs = np.zeros((4, 48), np.uint8)
    with pytest.raises(ValueError, match="multiple of 8"):
        native.hamming_topk(np.zeros((4, 12), np.uint8), np.zeros(12, np.uint8), 1)
    with pytest.raises(ValueError, match="expected 48 bytes"):
        native.hamming_topk(sigs, np.zeros(16, np.uint8), 1)
    with pytest.raises(TypeError, match="dtype"):
        native.hamming_topk(sigs.astype(np.int16), np.zeros(48, np.uint8), 1)
    with pytest.raises(IndexError, match="outside"):
        native.hamming_topk(sigs, np.zeros(48, np.uint8), 1, np.array([0, 9], np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        native.hamming_topk(np.zeros((4, 96), np.uint8)[:, ::2], np.zeros(48, np.uint8), 1)
    assert native.hamming_topk(sigs, np.zeros(48, np.uint8), 0)[0].size == 0
