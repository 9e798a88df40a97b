"""Row signatures of ternary weights, and what they say about a tensor's rows: diversity and near-duplicates.

A row's signature is its sign pattern in two bits per weight, one saying +1 and one saying -1 (0 sets neither), in
bytes that alternate over each 8 columns (the +1 byte, then the -1 byte). The Hamming distance between two
signatures is then exactly the L1 distance between the two rows of trits: 0 where they agree, 1 between 0 and a
sign, 2 between opposite signs. Distances are normalised by the signature's bits (2 per column): 0 for equal rows,
1 for a row and its negation with no zeros.

Diversity, the mean distance over all pairs of rows, needs no pairs: over column j with p_j plus and m_j minus
signs among n rows, p_j (n - p_j) + m_j (n - m_j) pairs differ in its bits, so the mean is exact in O(n x cols).

Near-duplicate rows (pairs within a radius) and each row's nearest other row come from the index's popcount scan
(`native.hamming_topk`, the same native scan the workspace index searches with), one query per row, on the
signatures' first SCAN_BYTES bytes (the scan's widest rows: 2048 columns). A pair within r over the whole row is
within r over any prefix, so the prefix finds every candidate and the whole signatures decide: the pairs are exact
at any width. The nearest-row distances are those of the scanned prefix (the whole row up to 2048 columns).
Queries run on worker threads (the scan releases the GIL).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from pyserver import native

SCAN_BYTES = 512  # the native scan's widest signature
FIRST_K = 8


def signature_bytes(cols: int) -> int:
    """Bytes of a row's signature: two bits per column, in whole 8-byte words as the scan needs."""
    return -(-cols // 32) * 8


def row_signatures(codes: np.ndarray) -> np.ndarray:
    """int8 trits [n, cols] -> uint8 signatures [n, signature_bytes(cols)] (zero padded)."""
    n, cols = codes.shape
    width = signature_bytes(cols)
    plus = np.packbits(codes > 0, axis=1)
    minus = np.packbits(codes < 0, axis=1)
    out = np.zeros((n, width), np.uint8)
    both = np.stack([plus, minus], axis=2).reshape(n, -1)
    out[:, : both.shape[1]] = both
    return out


def negated(sigs: np.ndarray) -> np.ndarray:
    """The signatures of the negated rows (the +1 and -1 bytes swapped)."""
    s = sigs.reshape(sigs.shape[0], -1, 2)
    return np.ascontiguousarray(s[:, :, ::-1]).reshape(sigs.shape)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between signature rows (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)


def mean_pairwise_distance(plus: np.ndarray, minus: np.ndarray, n: int) -> float:
    """The mean signature distance over all pairs of n rows, from the columns' +1 and -1 counts."""
    if n < 2:
        return 0.0
    p, m = plus.astype(np.float64), minus.astype(np.float64)
    differing = float((p * (n - p) + m * (n - m)).sum())
    return differing / (n * (n - 1) / 2)


def independent_distance(plus: int, minus: int, total: int, cols: int) -> float:
    """The mean distance two independent rows with the tensor's trit fractions would have: per column
    2 f+ (1 - f+) + 2 f- (1 - f-) bits."""
    if total == 0:
        return 0.0
    fp, fm = plus / total, minus / total
    return cols * 2 * (fp * (1 - fp) + fm * (1 - fm))


@dataclass
class NearDuplicates:
    radii: list[int]  # bits
    pairs: list[int]  # pairs of rows within each radius (whole signatures)
    nearest: np.ndarray  # per query row: the distance to its nearest other row (scanned prefix)
    nearest_row: np.ndarray  # ... and that row
    queries: np.ndarray  # the rows that were queries (all rows, or an even sample)
    scan_bits: int
    examples: list[tuple[int, int, int]] = field(default_factory=list)  # (row, row, distance), nearest first


def _query_rows(n: int, max_queries: int) -> np.ndarray:
    if n <= max_queries:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.arange(max_queries, dtype=np.int64) * n // max_queries)


def near_duplicates(
    sigs: np.ndarray, radii: Sequence[int], max_queries: int = 1 << 13, threads: int = 1, examples: int = 16
) -> NearDuplicates:
    """Pairs of rows within each radius (bits over the whole signature), found by one popcount scan per query row
    over the signatures' first SCAN_BYTES bytes. With more rows than max_queries, an even sample of rows are the
    queries and a pair counts when one of its rows is a query (the report says so)."""
    sigs = np.ascontiguousarray(sigs)
    n, width = sigs.shape
    radii = sorted(int(r) for r in radii)
    r_max = radii[-1] if radii else 0
    scan = np.ascontiguousarray(sigs[:, : min(width, SCAN_BYTES)])
    queries = _query_rows(n, max_queries)
    is_query = np.zeros(n, bool)
    is_query[queries] = True
    nearest = np.zeros(len(queries), np.int64)
    nearest_row = np.full(len(queries), -1, np.int64)

    def run(chunk: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        counts = np.zeros(len(radii), np.int64)
        found: list[tuple[int, int, int]] = []
        for qi in chunk.tolist():
            i = int(queries[qi])
            k = min(n, FIRST_K)
            while True:
                rows, dist = native.hamming_topk(scan, scan[i], k)
                if k >= n or dist[-1] > r_max:
                    break
                k = min(n, k * 4)
            other = rows != i
            if other.any():
                first = int(np.argmax(other))
                nearest[qi], nearest_row[qi] = int(dist[first]), int(rows[first])
            cand = rows[other & (dist <= r_max)]
            if not len(cand):
                continue
            full = distances(sigs[cand], sigs[i]) if width > scan.shape[1] else dist[other & (dist <= r_max)]
            # A pair counts once: from its lower row when both rows are queries, else from its query row.
            once = ~is_query[cand] | (cand > i)
            cand, full = cand[once], full[once]
            for ri, r in enumerate(radii):
                counts[ri] += int(np.count_nonzero(full <= r))
            near = np.argsort(full, kind="stable")[:examples]
            found += [(min(i, int(cand[j])), max(i, int(cand[j])), int(full[j])) for j in near if full[j] <= r_max]
        return counts, found

    chunks = np.array_split(np.arange(len(queries)), max(1, min(threads * 4, len(queries))))
    total = np.zeros(len(radii), np.int64)
    found: list[tuple[int, int, int]] = []
    if threads > 1 and len(queries) > 64:
        with ThreadPoolExecutor(threads, thread_name_prefix="inspect-scan") as pool:
            results = list(pool.map(run, chunks))
    else:
        results = [run(c) for c in chunks]
    for counts, ex in results:
        total += counts
        found += ex
    found.sort(key=lambda e: (e[2], e[0], e[1]))
    return NearDuplicates(
        radii, [int(c) for c in total], nearest, nearest_row, queries, scan.shape[1] * 8, found[:examples]
    )
