"""The token embedding's vocabulary clusters: each token's signature is the sign pattern of its embedding row (one bit
per dimension: > 0), and the index router's hierarchical k-majority clustering (`clusters.cluster_tree`, the
router's own splits) groups the tokens whose rows point the same way. Reported: the signatures' diversity and bit
balance, the tree's leaves (sizes, balance, depth), and the top-level clusters with the tokens nearest their
centroids."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyserver import native
from pyserver.inspect.clusters import ClusterTree, balance, centroid, cluster_tree
from pyserver.inspect.signatures import SCAN_BYTES
from pyserver.inspect.source import Table
from pyserver.inspect.weights import histogram

EXAMPLES = 8
BALANCE_BINS = 20


def embedding_signatures(table: Table, block_values: int = 1 << 22) -> tuple[np.ndarray, int]:
    """One bit per dimension (value > 0), padded to whole 8-byte words; at most the scan's SCAN_BYTES bytes (the
    first 4096 dimensions). Returns the signatures and the bits that carry a dimension."""
    dims = min(table.cols, SCAN_BYTES * 8)
    width = -(-dims // 64) * 8
    sigs = np.zeros((table.rows, width), np.uint8)
    for start, rows in table.blocks(block_values):
        packed = np.packbits(rows[:, :dims] > 0, axis=1)
        sigs[start : start + len(rows), : packed.shape[1]] = packed
    return sigs, dims


def bit_ones(sigs: np.ndarray, bits: int) -> np.ndarray:
    """How many signatures have each bit set."""
    ones = np.zeros(sigs.shape[1] * 8, np.int64)
    for start in range(0, len(sigs), 1 << 16):
        ones += np.unpackbits(sigs[start : start + (1 << 16)], axis=1).sum(axis=0, dtype=np.int64)
    return ones[:bits]


def signature_diversity(ones: np.ndarray, n: int) -> float:
    """Mean pairwise Hamming distance over all pairs, as a fraction of the bits, from the per-bit counts."""
    if n < 2 or not len(ones):
        return 0.0
    c = ones.astype(np.float64)
    return float((c * (n - c)).sum() / (n * (n - 1) / 2) / len(ones))


def tree_report(tree: ClusterTree, sigs: np.ndarray, bits: int, labels: list[str] | None) -> dict[str, Any]:
    sizes = tree.leaf_sizes()
    depths = tree.leaf_depths()
    top: list[dict[str, Any]] = []
    if tree.nodes:
        for c in sorted(tree.nodes[0].children, key=lambda c: -len(tree.nodes[c].rows)):
            rows = tree.nodes[c].rows
            cent = centroid(sigs, rows)
            near, dist = native.hamming_topk(sigs, cent, min(EXAMPLES, len(rows)), rows)
            radius = np.bitwise_count(sigs[rows] ^ cent).sum(axis=1).mean() / bits
            entry: dict[str, Any] = {"size": int(len(rows)), "radius": float(radius), "nearest": [int(r) for r in near]}
            if labels is not None:
                entry["examples"] = [labels[int(r)] if int(r) < len(labels) else f"#{int(r)}" for r in near]
            top.append(entry)
    return {
        "leaves": int(len(sizes)),
        "depth": int(depths.max()) if len(depths) else 0,
        "mean_leaf_depth": float(depths.mean()) if len(depths) else 0.0,
        "leaf_size": {
            "min": int(sizes.min()) if len(sizes) else 0,
            "median": float(np.median(sizes)) if len(sizes) else 0.0,
            "max": int(sizes.max()) if len(sizes) else 0,
            "mean": float(sizes.mean()) if len(sizes) else 0.0,
        },
        "leaf_sizes": [int(s) for s in sizes],
        "balance": balance(sizes),
        "top_clusters": top,
    }


def inspect_vocabulary(table: Table, tokens: list[str]) -> tuple[dict[str, Any], ClusterTree]:
    sigs, bits = embedding_signatures(table)
    ones = bit_ones(sigs, bits)
    tree = cluster_tree(sigs)
    report = {
        "tokens": table.rows,
        "signature_bits": bits,
        "diversity": signature_diversity(ones, table.rows),
        "bit_balance": histogram(ones / max(1, table.rows), BALANCE_BINS),
        "clusters": tree_report(tree, sigs, bits, tokens or None),
    }
    return report, tree
