"""The index router's hierarchical clustering, with its tree kept: what `SignatureRouter.build` does (top-down
k-majority splits into up to BRANCH children until a node holds at most twice LEAF_TARGET signatures), step for step
with the same random generator, so the leaves are the router's leaves (a test holds the two together), plus each
node's parent and depth, which the router drops. Used for the vocabulary clusters of a model's token embedding and
for the workspace index's clusters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pyserver.index.router import BRANCH, LEAF_TARGET, _k_majority, _majority
from pyserver.inspect.svg import TreeNode


@dataclass
class Node:
    parent: int  # -1 for the root
    depth: int
    rows: np.ndarray  # int64 rows of the signature matrix under this node
    children: list[int]


@dataclass
class ClusterTree:
    nodes: list[Node]  # nodes[0] is the root
    leaves: list[int]  # node ids of the leaves, in the order the router lists its leaves

    @property
    def depth(self) -> int:
        return max(self.nodes[i].depth for i in self.leaves) if self.leaves else 0

    def leaf_sizes(self) -> np.ndarray:
        return np.array([len(self.nodes[i].rows) for i in self.leaves], np.int64)

    def leaf_depths(self) -> np.ndarray:
        return np.array([self.nodes[i].depth for i in self.leaves], np.int64)

    def layout(self, max_depth: int = 4) -> list[TreeNode]:
        """Nodes down to max_depth, placed for an icicle picture: children side by side under their parent,
        largest first."""
        out: list[TreeNode] = []

        def place(i: int, start: int) -> None:
            node = self.nodes[i]
            out.append(TreeNode(node.depth, start, len(node.rows)))
            if node.depth >= max_depth:
                return
            offset = start
            for c in sorted(node.children, key=lambda c: -len(self.nodes[c].rows)):
                place(c, offset)
                offset += len(self.nodes[c].rows)

        if self.nodes:
            place(0, 0)
        return out


def cluster_tree(sigs: np.ndarray, target: int = LEAF_TARGET, seed: int = 0) -> ClusterTree:
    """SignatureRouter.build's splits, recording the tree."""
    sigs = np.ascontiguousarray(sigs)
    rng = np.random.default_rng(seed)
    nodes = [Node(-1, 0, np.arange(len(sigs), dtype=np.int64), [])]
    stack = [0]
    leaves: list[int] = []
    while stack:
        i = stack.pop()
        rows = nodes[i].rows
        if len(rows) <= 2 * target:
            leaves.append(i)
            continue
        k = int(min(BRANCH, -(-len(rows) // target)))
        labels = _k_majority(sigs[rows], k, rng)
        parts = [p for p in (rows[labels == c] for c in range(k)) if len(p)]
        if len(parts) == 1:  # identical signatures cannot be told apart: one leaf
            leaves.append(i)
            continue
        for p in parts:
            nodes.append(Node(i, nodes[i].depth + 1, p, []))
            nodes[i].children.append(len(nodes) - 1)
            stack.append(len(nodes) - 1)
    if not len(sigs):
        return ClusterTree([], [])
    return ClusterTree(nodes, leaves)


def balance(sizes: np.ndarray) -> float:
    """How evenly rows spread over clusters: the entropy of the size distribution over its maximum (1: all the same
    size; toward 0: one cluster holds nearly everything)."""
    sizes = sizes[sizes > 0].astype(np.float64)
    if len(sizes) < 2:
        return 1.0
    p = sizes / sizes.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(sizes)))


def centroid(sigs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The bitwise majority of some signatures (the router's centroid)."""
    return _majority(sigs[rows])
