"""The in-memory signatures follow the indexer's changes (router included) and agree with a fresh load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyserver import native
from pyserver.index.chunking import Chunk
from pyserver.index.embedder import binary_signatures, int8_vectors
from pyserver.index.signatures import LiveSignatures
from pyserver.index.store import FileRecord, IndexStore


def write(store: IndexStore, live: LiveSignatures, path: str, n: int, rng: np.random.Generator) -> None:
    chunks = [Chunk(i + 1, i + 1, "block", "", f"x{i} = {i}") for i in range(n)]
    live.chunks_removed(store.replace_file(FileRecord(path, str(rng.random()), 0.0, 1, "python"), chunks, []))
    ids = [cid for cid, _ in store.chunks_without_vectors(10_000)]
    v = rng.standard_normal((len(ids), 384)).astype(np.float32)
    q8, sc = int8_vectors(v)
    sigs = binary_signatures(v)
    written = store.put_vectors(ids, sigs, q8, sc)
    live.vectors_added(np.asarray(ids)[written], sigs[written])


def test_follows_changes_like_a_fresh_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = IndexStore(tmp_path / "i.sqlite")
    live = LiveSignatures(router_min=300)
    for f in range(8):
        write(store, live, f"f{f}.py", 60, rng)
    live.sync(store)
    assert live.count == 480 and live.router is not None
    live.router.check(480)
    for f in (1, 5):  # files change: their chunks go, new ones come (rows tombstoned, router updated)
        write(store, live, f"f{f}.py", 30, rng)
    live.chunks_removed(store.remove_file("f2.py") or [])
    live.sync(store)
    fresh = LiveSignatures(router_min=300)
    fresh.sync(store)
    assert live.count == fresh.count == store.counts()["vectors"] == 360
    ids, sigs = store.signatures()
    for q in sigs[::37]:
        want = ids[native.hamming_topk(sigs, q, 1)[0]]
        assert live.nearest(q, 1).tolist() == want.tolist()  # its own chunk, through the updated router
    assert set(live.nearest(sigs[0], 400).tolist()) <= set(ids.tolist())  # never a removed chunk


def test_another_writer_forces_a_reload(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = IndexStore(tmp_path / "i.sqlite")
    live = LiveSignatures()
    write(store, live, "a.py", 10, rng)
    live.sync(store)
    write(IndexStore(tmp_path / "i.sqlite"), LiveSignatures(), "b.py", 5, rng)  # not reported to `live`
    live.sync(store)
    assert live.count == 15
