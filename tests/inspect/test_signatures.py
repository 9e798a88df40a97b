"""Row signatures: their Hamming distance is the rows' L1 distance; diversity from column counts equals the mean
over all pairs; near-duplicate pairs from the popcount scan equal the O(n^2) count, for rows wider than the scan
(only a prefix is scanned, the whole rows decide) and with a sample of query rows."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver.inspect.signatures import (
    SCAN_BYTES,
    distances,
    mean_pairwise_distance,
    near_duplicates,
    negated,
    row_signatures,
    signature_bytes,
)
from tests.inspect.reference import nearest_other, pairwise_l1


def rows_with_near_copies(rng: np.random.Generator, n: int, cols: int, zero: float = 0.3) -> np.ndarray:
    c = rng.choice(np.array([-1, 0, 1], np.int8), size=(n, cols), p=[(1 - zero) / 2, zero, (1 - zero) / 2])
    for k in range(0, n // 4, 3):  # copies of row k with some weights changed
        c[k + 1] = c[k]
        where = rng.choice(cols, int(rng.integers(0, cols // 12)), replace=False)
        c[k + 1, where] = rng.integers(-1, 2, len(where))
    c[n - 1] = c[n - 2]
    return c


@pytest.mark.parametrize("cols", [96, 512, 4096 + 128])
def test_distance_is_l1(rng: np.random.Generator, cols: int) -> None:
    c = rng.integers(-1, 2, size=(20, cols)).astype(np.int8)
    s = row_signatures(c)
    assert s.shape == (20, signature_bytes(cols)) and s.shape[1] % 8 == 0
    assert np.array_equal(distances(s[:, None], s[None]), pairwise_l1(c))
    assert np.array_equal(negated(s), row_signatures(-c))
    p, m = (c > 0).sum(0), (c < 0).sum(0)
    iu = np.triu_indices(20, 1)
    assert mean_pairwise_distance(p, m, 20) == pytest.approx(pairwise_l1(c)[iu].mean())


@pytest.mark.parametrize("cols", [256, 2048, 4096 + 256])
def test_near_duplicates_match_all_pairs(rng: np.random.Generator, cols: int) -> None:
    c = rows_with_near_copies(rng, 300, cols)
    sigs = row_signatures(c)
    d = pairwise_l1(c)
    iu = np.triu_indices(len(c), 1)
    radii = [0, int(0.02 * 2 * cols), int(0.05 * 2 * cols), int(0.1 * 2 * cols)]
    nd = near_duplicates(sigs, radii, threads=2)
    assert nd.pairs == [int((d[iu] <= r).sum()) for r in radii]
    assert nd.pairs[-1] > nd.pairs[0] > 0
    scan_cols = min(cols, SCAN_BYTES * 4)
    assert nd.scan_bits == 2 * scan_cols
    assert np.array_equal(nd.nearest, nearest_other(pairwise_l1(c[:, :scan_cols])))
    for a, b, dist in nd.examples:
        assert d[a, b] == dist <= radii[-1]


def test_a_sample_of_queries(rng: np.random.Generator) -> None:
    """With more rows than queries, a pair counts when either of its rows is a query, once."""
    c = rows_with_near_copies(rng, 400, 512)
    d = pairwise_l1(c)
    radii = [0, 40, 100]
    nd = near_duplicates(row_signatures(c), radii, max_queries=64, threads=1)
    q = np.zeros(len(c), bool)
    q[nd.queries] = True
    assert len(nd.queries) == 64
    i, j = np.triu_indices(len(c), 1)
    either = q[i] | q[j]
    assert nd.pairs == [int(((d[i, j] <= r) & either).sum()) for r in radii]


def test_identical_rows_are_all_pairs(rng: np.random.Generator) -> None:
    c = np.zeros((50, 256), np.int8)  # e.g. a pruned tensor
    c[::2] = rng.integers(-1, 2, 256)
    nd = near_duplicates(row_signatures(c), [0])
    assert nd.pairs == [2 * (25 * 24 // 2)]
    assert not nd.nearest.any()
