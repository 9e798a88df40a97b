"""The hierarchical router: it partitions the signatures, keeps doing so through updates, and finds the exhaustive
search's top 10 (recall >= 0.95) while scanning under 20%."""

from __future__ import annotations

import numpy as np

from pyserver import native
from pyserver.index.router import MAX_SCAN_FRACTION, SignatureRouter, recall_at


def corpus(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Embedding-like data: topics, chunks around them, near-copies of chunks (as code bases have)."""
    topics = rng.standard_normal((60, 384)).astype(np.float32)
    base = topics[rng.integers(0, 60, 2000)] + 0.9 * rng.standard_normal((2000, 384)).astype(np.float32)
    x = base[rng.integers(0, 2000, n)] + 0.3 * rng.standard_normal((n, 384)).astype(np.float32)
    return np.packbits(x > 0, axis=1), base


def test_recall_against_exhaustive_search() -> None:
    rng = np.random.default_rng(0)
    sigs, base = corpus(rng, 60_000)
    router = SignatureRouter.build(sigs)
    router.check(len(sigs))
    recalls, scanned = [], []
    for _ in range(100):
        q = np.packbits(base[rng.integers(0, 2000)] + 0.3 * rng.standard_normal(384) > 0)
        _, exact = native.hamming_topk(sigs, q, 10)
        _, got, n = router.search_with_stats(sigs, q, 10)
        recalls.append(recall_at(exact, got))
        scanned.append(n / len(sigs))
    assert np.mean(recalls) >= 0.95
    assert max(scanned) <= MAX_SCAN_FRACTION + 1e-9 and np.mean(scanned) < MAX_SCAN_FRACTION


def test_updates_keep_a_partition() -> None:
    rng = np.random.default_rng(1)
    sigs, _ = corpus(rng, 3000)
    router = SignatureRouter.build(sigs[:2000], target=32)
    for row in range(2000, 3000):  # new chunks join their nearest leaf; big leaves split
        router.add(sigs, row)
    router.check(3000)
    assert max(len(leaf.rows) for leaf in router.leaves) <= 2 * router.target
    leaves_before = len(router.leaves)
    for row in range(0, 3000, 2):  # half the chunks go; small leaves merge away
        router.remove(sigs, row)
    rows = np.sort(np.concatenate([leaf.rows for leaf in router.leaves]))
    assert rows.tolist() == list(range(1, 3000, 2))
    assert min(len(leaf.rows) for leaf in router.leaves) >= router.target // 4
    assert len(router.leaves) < leaves_before
    # The rows are still found where the router looks for them: a row's own signature as the query.
    found = [router.search(sigs, sigs[row], 1)[1][0] == 0 for row in range(1, 3000, 2)]
    assert np.mean(found) >= 0.95


def test_similar_leaves_merge() -> None:
    rng = np.random.default_rng(2)
    one = rng.integers(0, 256, 48, dtype=np.uint8)
    sigs = np.repeat(one[None], 40, axis=0)
    sigs[20:, 0] ^= 1  # two groups one bit apart
    router = SignatureRouter(np.stack([sigs[0], sigs[20]]), [], target=32)
    from pyserver.index.router import Leaf

    router.leaves = [Leaf(np.arange(20), 0.0), Leaf(np.arange(20, 40), 0.0)]
    assert router.merge_similar(sigs) == 1 and len(router.leaves) == 1
    router.check(40)
