"""`inspect-index` on an index file with known contents: files and chunks per language, the signatures' diversity,
the router's clusters and scans, each against numpy or the router itself; and the page's figures carry them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyserver import native
from pyserver.index.chunking import Chunk
from pyserver.index.router import SignatureRouter
from pyserver.index.store import FileRecord, IndexStore
from pyserver.inspect.html import external_references
from pyserver.inspect.index_report import inspect_index
from tests.inspect.reference import close, figures, hist, values

FILES = {"a.py": ("python", 5), "b.py": ("python", 3), "c.go": ("go", 4), "notes.txt": (None, 2)}


def make_index(path: Path, rng: np.random.Generator, n_extra: int = 600) -> np.ndarray:
    store = IndexStore(path)
    ids: list[int] = []
    for name, (lang, n) in FILES.items():
        chunks = [Chunk(i * 10 + 1, i * 10 + 9, "block", "", f"text {name} {i}") for i in range(n)]
        store.replace_file(FileRecord(name, name, 0.0, 100 * n, lang), chunks, [])
    # Many more chunks in one file, to give the router something to split: topics with noise.
    big = [Chunk(i + 1, i + 1, "block", "", f"line {i}") for i in range(n_extra)]
    store.replace_file(FileRecord("big.py", "big", 0.0, 10 * n_extra, "python"), big, [])
    ids = [int(r[0]) for r in store.conn.execute("SELECT id FROM chunks ORDER BY id")]
    topics = rng.integers(0, 256, size=(8, 48), dtype=np.uint8)
    sigs = topics[rng.integers(0, 8, len(ids))] ^ np.packbits(rng.random((len(ids), 384)) < 0.1, axis=1)
    q8 = np.zeros((len(ids), 384), np.int8)
    store.put_vectors(ids, sigs, q8, np.ones(len(ids), np.float32))
    store.close()
    return sigs


def test_index_report_against_numpy(tmp_path: Path, rng: np.random.Generator) -> None:
    db = tmp_path / "ws.sqlite"
    sigs = make_index(db, rng)
    report, html = inspect_index(db, "/some/ws")
    langs = {r["language"]: r for r in report["languages"]}
    assert langs["python"]["files"] == 3 and langs["python"]["chunks"] == 5 + 3 + 600
    assert langs["go"] == {"language": "go", "files": 1, "bytes": 400, "chunks": 4}
    assert langs["(other)"]["chunks"] == 2
    assert report["counts"]["vectors"] == len(sigs) and not report["router_active"]

    n = len(sigs)
    bits = np.unpackbits(sigs, axis=1).astype(np.int64)
    d = np.abs(bits[:, None, :] - bits[None, :, :]).sum(axis=2)
    iu = np.triu_indices(n, 1)
    s = report["signatures"]
    assert s["diversity"] == pytest.approx(d[iu].mean() / 384)
    assert s["bit_balance"]["counts"] == hist(bits.mean(axis=0), 20)
    sample = np.unique(np.arange(min(n, 512)) * n // min(n, 512))
    ds = d[np.ix_(sample, sample)][np.triu_indices(len(sample), 1)] / 384
    assert s["pairwise"]["counts"] == hist(ds, 40)

    router = SignatureRouter.build(sigs)
    sizes = [len(leaf.rows) for leaf in router.leaves]
    cl = report["clusters"]
    assert cl["leaf_sizes"] == sizes and cl["leaves"] == len(sizes) >= 8 and cl["depth"] >= 1
    scanned, recalls = [], []
    for q in np.unique(np.arange(200) * n // 200):
        _, got, k = router.search_with_stats(sigs, sigs[q], 10)
        _, exact = native.hamming_topk(sigs, sigs[q], 10)
        scanned.append(k / n)
        recalls.append(float((got[:10] <= exact[-1]).sum()) / 10)
    scan = report["scan"]
    assert scan["queries"] == 200 and scan["scanned_fraction_mean"] == pytest.approx(np.mean(scanned))
    assert scan["recall_mean"] == pytest.approx(np.mean(recalls))
    assert 1 <= scan["leaves_probed_mean"] <= len(sizes)

    figs = figures(html)
    assert sorted(figs) == sorted(f["id"] for f in report["figures"])
    names = [r["language"] for r in report["languages"]]
    assert close(values(figs["files"]), [langs[x]["files"] for x in names])
    assert close(values(figs["chunks"]), [langs[x]["chunks"] for x in names])
    assert close(values(figs["bits"]), hist(bits.mean(axis=0), 20))
    assert close(values(figs["pairwise"]), hist(ds, 40))
    top = max(sizes)
    assert close(values(figs["leaves"]), np.histogram(sizes, bins=min(40, top), range=(0, top))[0])
    assert values(figs["tree"], "data-size")[0] == n
    assert close(values(figs["scan"]), hist(np.array(scanned), 40))
    assert external_references(html) == [] and html.count("<svg") == len(figs)


def test_a_lexical_index(tmp_path: Path) -> None:
    db = tmp_path / "lex.sqlite"
    store = IndexStore(db)
    store.replace_file(FileRecord("a.py", "h", 0.0, 10, "python"), [Chunk(1, 2, "block", "", "x = 1")], [])
    store.close()
    report, html = inspect_index(db)
    assert "signatures" not in report and report["languages"][0]["chunks"] == 1
    assert "lexical only" in html and html.count("<svg") == len(report["figures"]) == 2
