"""A hierarchical router over binary signatures, for workspaces of 100k chunks and more.

Building: the signatures are split top-down, each node into up to BRANCH children by k-majority (the binary
k-means: a centroid is the bitwise majority of its members), until the leaves hold about LEAF_TARGET signatures.
The tree makes building cost n log n instead of n x leaves; the leaves are what queries rank.

Searching: the leaves are ranked by the Hamming distance of their centroid to the query and scanned in that order
in growing rounds. After each round the search stops when it is confident that no unscanned leaf holds a nearer
signature: the k-th best distance found is below the next leaf's centroid distance minus that leaf's typical radius.
A query that falls between clusters (close centroid distances, wide leaves) so probes more leaves, a clear one
fewer; it never scans more than MAX_SCAN_FRACTION.

Keeping it up to date: a new signature joins its nearest leaf; a leaf grown past twice the target splits in two; a
leaf shrunk below a quarter of it merges into its nearest neighbour. `merge_similar`, which merges leaves whose
centroids come within MERGE_BITS of each other, is a maintenance pass: live updates do not run it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyserver import native

LEAF_TARGET = 48  # signatures per leaf: small leaves follow the data's shape closely (tested on real embeddings)
BRANCH = 16  # children per split
TRAIN_SAMPLE = 16_384  # each split trains on at most this many of its rows, then assigns them all
TRAIN_ROUNDS = 5
MAX_SCAN_FRACTION = 0.2
FIRST_ROUND = 0.01  # the first round scans this share (at least MIN_PROBE leaves); each later round doubles
MIN_PROBE = 8
RADIUS_SLACK = 0.35  # how much of a leaf's mean radius the stopping rule allows for (calibrated: bench index)
MERGE_BITS = 12


def _majority(sigs: np.ndarray) -> np.ndarray:
    """The bitwise majority of packed signatures (the centroid minimising the summed Hamming distance)."""
    bits = np.unpackbits(sigs, axis=1).sum(0, dtype=np.int64)
    return np.packbits(bits * 2 > len(sigs))


def _k_majority(sigs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Labels of sigs into at most k clusters."""
    sample = sigs[rng.choice(len(sigs), TRAIN_SAMPLE, replace=False)] if len(sigs) > TRAIN_SAMPLE else sigs
    cents = np.ascontiguousarray(sample[rng.choice(len(sample), min(k, len(sample)), replace=False)])
    for _ in range(TRAIN_ROUNDS):
        labels, _ = native.hamming_nearest(sample, cents)
        for c in range(len(cents)):
            m = sample[labels == c]
            if len(m):
                cents[c] = _majority(m)
    labels, _ = native.hamming_nearest(sigs, cents)
    return labels


@dataclass
class Leaf:
    rows: np.ndarray  # int64 rows of the signature matrix
    radius: float  # mean distance of the members to the centroid


class SignatureRouter:
    def __init__(self, centroids: np.ndarray, leaves: list[Leaf], target: int = LEAF_TARGET) -> None:
        self.centroids = centroids  # (leaves, bytes) uint8
        self.leaves = leaves
        self.target = target
        self._flat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # rows by leaf, offsets, sizes

    def _flattened(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All rows ordered by leaf, each leaf's offset and size: the rows of any set of leaves in one gather."""
        if self._flat is None:
            sizes = np.fromiter((len(leaf.rows) for leaf in self.leaves), np.int64, len(self.leaves))
            rows = np.concatenate([leaf.rows for leaf in self.leaves]) if self.leaves else np.zeros(0, np.int64)
            self._flat = (rows, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64), sizes)
        return self._flat

    def _rows_of(self, leaf_ids: np.ndarray) -> np.ndarray:
        rows, offsets, sizes = self._flattened()
        lens = sizes[leaf_ids]
        starts = np.repeat(offsets[leaf_ids] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        return rows[starts + np.arange(int(lens.sum()))]

    # ---- building --------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, sigs: np.ndarray, target: int = LEAF_TARGET, seed: int = 0) -> SignatureRouter:
        sigs = np.ascontiguousarray(sigs)
        rng = np.random.default_rng(seed)
        stack = [np.arange(len(sigs), dtype=np.int64)]
        groups: list[np.ndarray] = []
        while stack:
            rows = stack.pop()
            if len(rows) <= 2 * target:
                groups.append(rows)
                continue
            k = int(min(BRANCH, -(-len(rows) // target)))
            labels = _k_majority(sigs[rows], k, rng)
            parts = [rows[labels == c] for c in range(k)]
            parts = [p for p in parts if len(p)]
            if len(parts) == 1:  # identical signatures cannot be told apart: one leaf
                groups.append(rows)
                continue
            stack.extend(parts)
        router = cls(np.zeros((0, sigs.shape[1]), np.uint8), [], target)
        router.centroids = np.stack([_majority(sigs[g]) for g in groups]) if groups else router.centroids
        router.leaves = [Leaf(g, 0.0) for g in groups]
        for i in range(len(groups)):
            router._measure(sigs, i)
        return router

    def _measure(self, sigs: np.ndarray, i: int) -> None:
        leaf = self.leaves[i]
        if len(leaf.rows):
            self.centroids[i] = _majority(sigs[leaf.rows])
            leaf.radius = float(np.bitwise_count(sigs[leaf.rows] ^ self.centroids[i]).sum(1).mean())

    @property
    def size(self) -> int:
        return len(self._flattened()[0])

    # ---- searching -------------------------------------------------------------------------------------------

    def search(
        self, sigs: np.ndarray, query: np.ndarray, k: int, max_fraction: float = MAX_SCAN_FRACTION
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, distances) of the k nearest signatures as far as the router finds them, nearest first."""
        rows, dist, _ = self.search_with_stats(sigs, query, k, max_fraction)
        return rows, dist

    def search_with_stats(
        self, sigs: np.ndarray, query: np.ndarray, k: int, max_fraction: float = MAX_SCAN_FRACTION
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Also returns how many signatures were scanned."""
        if not self.leaves:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), 0
        query = np.ascontiguousarray(query)
        budget = max(1, int(max_fraction * self.size))
        # Only the leaves the budget could reach need ranking (twice the count an average leaf gives, and the rest
        # of the ranking is never read).
        reach = min(len(self.leaves), 2 * int(np.ceil(max_fraction * len(self.leaves))) + MIN_PROBE + 1)
        order, cd_sorted = native.hamming_topk(self.centroids, query, reach)
        cum = np.cumsum(self._flattened()[2][order])
        cap = max(1, int(np.searchsorted(cum, budget, side="right")))  # leaves that fit the budget
        probe = min(cap, max(MIN_PROBE, int(np.searchsorted(cum, FIRST_ROUND * self.size)) + 1))
        done = 0
        best_rows, best_dist = np.zeros(0, np.int64), np.zeros(0, np.int32)
        while True:
            # Scan only the leaves new to this round; keep the running top k.
            rows = self._rows_of(order[done:probe])
            found, dist = native.hamming_topk(sigs, query, k, rows)
            best_rows, best_dist = _merge_top(best_rows, best_dist, found, dist, k)
            done = probe
            if probe >= min(cap, len(order)):
                return best_rows, best_dist, int(cum[probe - 1])
            kth = best_dist[-1] if len(best_dist) >= k else np.iinfo(np.int32).max
            if kth <= cd_sorted[probe] - RADIUS_SLACK * self.leaves[order[probe]].radius:
                return best_rows, best_dist, int(cum[probe - 1])
            probe = min(cap, 2 * probe)

    # ---- keeping it up to date -------------------------------------------------------------------------------

    def _nearest_leaves(self, q: np.ndarray) -> np.ndarray:
        order, _ = native.hamming_topk(self.centroids, np.ascontiguousarray(q), len(self.leaves))
        return order

    def add(self, sigs: np.ndarray, row: int) -> None:
        self._flat = None
        if not self.leaves:
            self.centroids = sigs[row][None].copy()
            self.leaves = [Leaf(np.array([row], np.int64), 0.0)]
            return
        i = int(self._nearest_leaves(sigs[row])[0])
        self.leaves[i].rows = np.append(self.leaves[i].rows, row)
        if len(self.leaves[i].rows) > 2 * self.target:
            self._split(sigs, i)
        else:
            self._measure(sigs, i)  # a leaf holds at most 2 x target rows: cheap

    def remove(self, sigs: np.ndarray, row: int) -> None:
        self._flat = None
        for i, leaf in enumerate(self.leaves):
            hit = np.flatnonzero(leaf.rows == row)
            if hit.size:
                leaf.rows = np.delete(leaf.rows, hit)
                if len(leaf.rows) < max(1, self.target // 4):
                    self._merge_into_nearest(sigs, i)
                else:
                    self._measure(sigs, i)
                return

    def _split(self, sigs: np.ndarray, i: int) -> None:
        self._flat = None
        rows = self.leaves[i].rows
        labels = _k_majority(np.ascontiguousarray(sigs[rows]), 2, np.random.default_rng(len(rows)))
        parts = [rows[labels == c] for c in (0, 1)]
        if not all(len(p) for p in parts):
            return
        self.leaves[i] = Leaf(parts[0], 0.0)
        self.leaves.append(Leaf(parts[1], 0.0))
        self.centroids = np.concatenate([self.centroids, self.centroids[i : i + 1]])
        self._measure(sigs, i)
        self._measure(sigs, len(self.leaves) - 1)

    def _merge_into_nearest(self, sigs: np.ndarray, i: int) -> None:
        self._flat = None
        if len(self.leaves) < 2:
            if not len(self.leaves[i].rows):
                self.leaves, self.centroids = [], self.centroids[:0]
            return
        other = int(next(o for o in self._nearest_leaves(self.centroids[i]) if o != i))
        self.leaves[other].rows = np.concatenate([self.leaves[other].rows, self.leaves[i].rows])
        self._measure(sigs, other)
        del self.leaves[i]
        self.centroids = np.delete(self.centroids, i, axis=0)

    def merge_similar(self, sigs: np.ndarray, bits: int = MERGE_BITS) -> int:
        """Merges leaves whose centroids are within `bits` of each other; returns how many merges."""
        merged, i = 0, 0
        while i < len(self.leaves) and len(self.leaves) > 1:
            order, cd = native.hamming_topk(self.centroids, self.centroids[i], 2)
            other = int(order[1] if order[0] == i else order[0])
            near = int(cd[1] if order[0] == i else cd[0])
            if near <= bits and len(self.leaves[i].rows) + len(self.leaves[other].rows) <= 2 * self.target:
                self._merge_into_nearest(sigs, i)
                merged += 1
            else:
                i += 1
        return merged

    def check(self, n: int) -> None:
        """Every row 0..n-1 in exactly one leaf (tests)."""
        rows = np.sort(np.concatenate([leaf.rows for leaf in self.leaves])) if self.leaves else np.zeros(0)
        if not np.array_equal(rows, np.arange(n)):
            raise AssertionError("router leaves do not partition the rows")


def _merge_top(r1: np.ndarray, d1: np.ndarray, r2: np.ndarray, d2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    rows, dist = np.concatenate([r1, r2]), np.concatenate([d1, d2])
    order = np.lexsort((rows, dist))[:k]
    return rows[order], dist[order]


def recall_at(exact_distances: np.ndarray, approx_distances: np.ndarray) -> float:
    """Share of the routed top-k that is as near as the exhaustive top-k (its k-th distance), so that ties at the
    boundary count as found whichever of them either search returned."""
    k = len(exact_distances)
    if k == 0:
        return 1.0
    return min(k, int((approx_distances[:k] <= exact_distances[-1]).sum())) / k
