"""The binary signatures in memory, for the Hamming scan and the router, kept in step with the index file by the
changes the indexer reports (vectors written, chunks removed) rather than reloaded: rows never move, a removed
chunk's row is a tombstone, and the router follows every change (its leaves split and merge as files change). When
a quarter of the rows are tombstones, or the file was changed by another process, everything is reloaded."""

from __future__ import annotations

import threading

import numpy as np

from pyserver import native
from pyserver.index.embedder import SIGNATURE_BYTES
from pyserver.index.router import SignatureRouter
from pyserver.index.store import IndexStore

ROUTER_MIN_CHUNKS = 100_000  # below this an exhaustive scan is cheaper than routing
COMPACT_FRACTION = 0.25


class LiveSignatures:
    def __init__(self, router_min: int = ROUTER_MIN_CHUNKS) -> None:
        self.router_min = router_min
        self._lock = threading.Lock()
        self._loaded = False
        self._ids = np.zeros(0, np.int64)  # row -> chunk id, -1 for a tombstone
        self._sigs = np.zeros((0, SIGNATURE_BYTES), np.uint8)
        self._n = 0  # rows in use
        self._row_of: dict[int, int] = {}
        self._live: np.ndarray | None = None  # live rows, for the exhaustive scan
        self.router: SignatureRouter | None = None
        self._added: list[tuple[np.ndarray, np.ndarray]] = []
        self._removed: list[int] = []

    # ---- changes, reported by the writer (any thread) ---------------------------------------------------------

    def vectors_added(self, chunk_ids: np.ndarray, sigs: np.ndarray) -> None:
        with self._lock:
            self._added.append((np.asarray(chunk_ids, np.int64), np.asarray(sigs, np.uint8)))

    def chunks_removed(self, chunk_ids: list[int]) -> None:
        with self._lock:
            self._removed.extend(chunk_ids)

    def reset(self) -> None:
        """The index file was replaced: everything is reloaded from it on the next sync."""
        with self._lock:
            self._loaded = False
            self._added, self._removed = [], []

    # ---- bringing the memory in line ----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self._row_of)

    def sync(self, store: IndexStore) -> None:
        with self._lock:
            added, removed = self._added, self._removed
            self._added, self._removed = [], []
        if not self._loaded:
            self._load(store)
            return
        for cid in removed:
            self._drop(cid)
        for ids, sigs in added:
            for cid, sig in zip(ids.tolist(), sigs):
                self._drop(cid)  # a chunk embedded again replaces its row
                self._append(cid, sig)
        if self._n and (self._n - self.count) > COMPACT_FRACTION * self._n:
            self._load(store)
        elif store.vector_count() != self.count:  # written by another process meanwhile
            self._load(store)
        elif self.router is None and self.count >= self.router_min:
            self._load(store)  # grown past the size where routing pays

    def _load(self, store: IndexStore) -> None:
        ids, sigs = store.signatures()
        self._ids, self._sigs, self._n = ids.copy(), np.ascontiguousarray(sigs), len(ids)
        self._row_of = {int(c): i for i, c in enumerate(ids.tolist())}
        self._live = None
        self.router = SignatureRouter.build(self._sigs) if self._n >= self.router_min else None
        self._loaded = True
        with self._lock:  # changes reported before this load are in it already
            self._added, self._removed = [], []

    def _drop(self, cid: int) -> None:
        row = self._row_of.pop(int(cid), None)
        if row is None:
            return
        self._ids[row] = -1
        self._live = None
        if self.router is not None:
            self.router.remove(self._sigs[: self._n], row)

    def _append(self, cid: int, sig: np.ndarray) -> None:
        if self._n == len(self._ids):
            cap = max(1024, 2 * self._n)
            ids = np.full(cap, -1, np.int64)
            ids[: self._n] = self._ids[: self._n]
            sigs = np.zeros((cap, SIGNATURE_BYTES), np.uint8)
            sigs[: self._n] = self._sigs[: self._n]
            self._ids, self._sigs = ids, sigs
        row = self._n
        self._ids[row], self._sigs[row] = cid, sig
        self._n += 1
        self._row_of[int(cid)] = row
        self._live = None
        if self.router is not None:
            self.router.add(self._sigs[: self._n], row)

    # ---- searching ---------------------------------------------------------------------------------------------

    def nearest(self, qsig: np.ndarray, k: int) -> np.ndarray:
        """Chunk ids of the k nearest signatures (routed at large scale, exhaustive otherwise)."""
        if self.count == 0:
            return np.zeros(0, np.int64)
        sigs = self._sigs[: self._n]
        if self.router is not None:
            rows, _ = self.router.search(sigs, qsig, k)
        else:
            if self._live is None:
                self._live = np.flatnonzero(self._ids[: self._n] >= 0).astype(np.int64)
            rows, _ = native.hamming_topk(sigs, qsig, k, self._live)
        return self._ids[rows]
