"""`python -m pyserver inspect-index PATH`: what the workspace index holds and how its router would split it: files
and chunks per language, the embedding signatures' diversity and bit balance, the router's clusters (sizes,
balance, depth) and how much of the index a query scans through it (and whether it finds the exhaustive scan's
top k). The router is built here over the stored signatures whatever their number (the index itself routes from
ROUTER_MIN_CHUNKS on), with the router's own code."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pyserver import native
from pyserver.index.router import SignatureRouter, recall_at
from pyserver.index.signatures import ROUTER_MIN_CHUNKS
from pyserver.index.store import IndexStore
from pyserver.inspect import svg
from pyserver.inspect.clusters import ClusterTree, cluster_tree
from pyserver.inspect.html import Section, TableData, page
from pyserver.inspect.vocabulary import bit_ones, signature_diversity, tree_report
from pyserver.inspect.weights import histogram

QUERIES = 200  # stored signatures used as queries for the scan statistics
TOP_K = 10
PAIR_SAMPLE = 512  # signatures whose pairwise distances are drawn
BINS = 40


def languages(store: IndexStore) -> list[dict[str, Any]]:
    """Files, bytes and chunks per language (None: a file indexed in line windows without a known language)."""
    files = {
        lang: (int(n), int(size or 0))
        for lang, n, size in store.conn.execute("SELECT language, count(*), sum(size) FROM files GROUP BY language")
    }
    chunks = dict(
        store.conn.execute(
            "SELECT f.language, count(*) FROM chunks c JOIN files f ON f.id = c.file_id GROUP BY f.language"
        ).fetchall()
    )
    out = [
        {"language": lang or "(other)", "files": n, "bytes": size, "chunks": int(chunks.get(lang, 0))}
        for lang, (n, size) in files.items()
    ]
    return sorted(out, key=lambda r: (-r["chunks"], -r["files"], r["language"]))


def _even(n: int, k: int) -> np.ndarray:
    return np.unique(np.arange(min(n, k), dtype=np.int64) * n // max(1, min(n, k)))


def scan_stats(sigs: np.ndarray, router: SignatureRouter, queries: int = QUERIES, k: int = TOP_K) -> dict[str, Any]:
    """Stored signatures as queries: signatures and leaves the router scans for the top k, and the share of the
    exhaustive top k it finds (ties at the k-th distance count as found)."""
    if not router.leaves or not len(sigs):
        return {"queries": 0}
    sizes = np.array([len(leaf.rows) for leaf in router.leaves], np.int64)
    scanned, leaves, recalls = [], [], []
    for q in _even(len(sigs), queries).tolist():
        query = np.ascontiguousarray(sigs[q])
        _rows, dist, n = router.search_with_stats(sigs, query, k)
        order, _ = native.hamming_topk(router.centroids, query, len(router.leaves))
        probed = int(np.searchsorted(np.cumsum(sizes[order]), n, side="left")) + 1
        _exact_rows, exact = native.hamming_topk(sigs, query, k)
        scanned.append(n)
        leaves.append(min(probed, len(sizes)))
        recalls.append(recall_at(exact, dist))
    fraction = np.array(scanned, np.float64) / len(sigs)
    return {
        "queries": len(scanned),
        "k": k,
        "scanned_mean": float(np.mean(scanned)),
        "scanned_fraction_mean": float(fraction.mean()),
        "scanned_fraction_max": float(fraction.max()),
        "leaves_probed_mean": float(np.mean(leaves)),
        "leaves_probed_max": int(np.max(leaves)),
        "recall_mean": float(np.mean(recalls)),
        "scanned_fraction_histogram": histogram(fraction, BINS),
    }


def pairwise_sample(sigs: np.ndarray, bits: int) -> dict[str, list[float]]:
    """Histogram of the normalised distances between every pair of an even sample of signatures."""
    s = sigs[_even(len(sigs), PAIR_SAMPLE)]
    d = np.bitwise_count(s[:, None, :] ^ s[None, :, :]).sum(axis=-1) / bits
    return histogram(d[np.triu_indices(len(s), 1)], BINS)


def inspect_index(db_path: Path, root: str | None = None) -> tuple[dict[str, Any], str]:
    """The report of one index file (opened, never written to unless it must be rebuilt) and its HTML page."""
    t0 = time.perf_counter()
    store = IndexStore(db_path)
    try:
        counts = store.counts()
        langs = languages(store)
        _ids, sigs = store.signatures()
    finally:
        store.close()
    sigs = np.ascontiguousarray(sigs)
    bits = sigs.shape[1] * 8
    report: dict[str, Any] = {
        "report": "index",
        "database": str(db_path),
        "root": root,
        "counts": counts,
        "languages": langs,
        "router_active": len(sigs) >= ROUTER_MIN_CHUNKS,
        "router_min_chunks": ROUTER_MIN_CHUNKS,
    }
    tree: ClusterTree | None = None
    if len(sigs):
        ones = bit_ones(sigs, bits)
        report["signatures"] = {
            "count": int(len(sigs)),
            "bits": bits,
            "diversity": signature_diversity(ones, len(sigs)),
            "bit_balance": histogram(ones / len(sigs), BINS // 2),
            "pairwise": pairwise_sample(sigs, bits),
        }
        tree = cluster_tree(sigs)
        router = SignatureRouter.build(sigs)
        report["clusters"] = tree_report(tree, sigs, bits, None)
        report["clusters"]["leaf_radius_mean"] = float(np.mean([leaf.radius for leaf in router.leaves]) / bits)
        report["scan"] = scan_stats(sigs, router)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    figures = index_figures(report, tree)
    report["figures"] = [{"id": f.id, "caption": f.caption} for f in figures]
    return report, index_page(report, figures)


def index_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a terminal shows (the rest is in the page and in --json)."""
    out: dict[str, Any] = {
        "index": report["database"],
        **report["counts"],
        "languages": {r["language"]: f"{r['files']} files, {r['chunks']} chunks" for r in report["languages"]},
        "router_active": report["router_active"],
    }
    sig, cl, scan = report.get("signatures"), report.get("clusters"), report.get("scan")
    if sig is not None and cl is not None and scan is not None:
        out["signature_diversity"] = round(sig["diversity"], 4)
        out["clusters"] = {
            "leaves": cl["leaves"],
            "depth": cl["depth"],
            "leaf_sizes_min_median_max": [cl["leaf_size"]["min"], cl["leaf_size"]["median"], cl["leaf_size"]["max"]],
            "balance": round(cl["balance"], 3),
        }
        if scan.get("queries"):
            out["per_query"] = {
                "scanned_share": round(scan["scanned_fraction_mean"], 4),
                "leaves_probed": round(scan["leaves_probed_mean"], 2),
                "recall_of_exhaustive_top_k": round(scan["recall_mean"], 3),
            }
    out["seconds"] = report["seconds"]
    return out


def index_figures(report: dict[str, Any], tree: ClusterTree | None) -> list[svg.Figure]:
    figs: list[svg.Figure] = []
    langs = report["languages"]
    if langs:
        names = [r["language"] for r in langs]
        figs.append(
            svg.Figure(
                "files", "Files per language.", svg.bars("files", names, [r["files"] for r in langs], "Files", "files")
            )
        )
        figs.append(
            svg.Figure(
                "chunks",
                "Chunks per language.",
                svg.bars("chunks", names, [r["chunks"] for r in langs], "Chunks", "chunks"),
            )
        )
    sig = report.get("signatures")
    if sig is not None:
        bb, pw = sig["bit_balance"], sig["pairwise"]
        figs.append(
            svg.Figure(
                "bits",
                "Share of signatures with each bit set (0.5 everywhere: every bit splits the index).",
                svg.histogram("bits", bb["counts"], bb["edges"], "Signature bit balance", "share set", "bits"),
            )
        )
        figs.append(
            svg.Figure(
                "pairwise",
                "Distances between pairs of a sample of signatures, over their bits.",
                svg.histogram(
                    "pairwise",
                    pw["counts"],
                    pw["edges"],
                    "Pairwise signature distance",
                    "normalised Hamming distance",
                    "pairs",
                ),
            )
        )
    cl = report.get("clusters")
    if cl is not None and tree is not None:
        sizes = np.array(cl["leaf_sizes"])
        top = int(sizes.max()) if len(sizes) else 1
        counts, edges = np.histogram(sizes, bins=min(BINS, max(1, top)), range=(0, top))
        figs.append(
            svg.Figure(
                "leaves",
                "Signatures per router leaf.",
                svg.histogram(
                    "leaves",
                    [float(c) for c in counts],
                    [float(e) for e in edges],
                    "Router leaf sizes",
                    "signatures in the leaf",
                    "leaves",
                ),
            )
        )
        figs.append(
            svg.Figure(
                "tree",
                "The router's clusters, four levels deep (width: share of the signatures).",
                svg.icicle("tree", tree.layout(4), report["signatures"]["count"], "Cluster tree"),
            )
        )
    scan = report.get("scan")
    if scan is not None and scan.get("queries"):
        h = scan["scanned_fraction_histogram"]
        figs.append(
            svg.Figure(
                "scan",
                f"Share of the index the router scans for a top-{scan['k']} query (stored signatures as queries).",
                svg.histogram("scan", h["counts"], h["edges"], "Scanned per query", "share of signatures", "queries"),
            )
        )
    return figs


def index_page(report: dict[str, Any], figures: list[svg.Figure]) -> str:
    c = report["counts"]
    lines = [
        f"{report['root'] or report['database']}: {c['files']:,} files, {c['chunks']:,} chunks, {c['vectors']:,} "
        f"embedded (index file {report['database']}).",
        f"The router {'routes this index' if report['router_active'] else 'is not used at this size'} (it routes from "
        f"{report['router_min_chunks']:,} chunks on); below, it is built over the stored signatures either way.",
    ]
    lang_table = TableData(
        ["language", "files", "bytes", "chunks"],
        [[r["language"], r["files"], r["bytes"], r["chunks"]] for r in report["languages"]],
    )
    sections = [Section("Files and chunks", [], [lang_table], [f for f in figures if f.id in ("files", "chunks")])]
    sig = report.get("signatures")
    if sig is None:
        sections.append(Section("Signatures", ["No embeddings yet: the index is lexical only."]))
    else:
        cl, scan = report["clusters"], report["scan"]
        rows: list[list[object]] = [
            ["signatures", sig["count"]],
            ["bits", sig["bits"]],
            ["diversity (mean pairwise distance / bits)", sig["diversity"]],
            ["leaves", cl["leaves"]],
            ["depth", cl["depth"]],
            [
                "leaf sizes min / median / max",
                f"{cl['leaf_size']['min']} / {cl['leaf_size']['median']:g} / {cl['leaf_size']['max']}",
            ],
            ["balance (size entropy / its maximum)", cl["balance"]],
            ["mean leaf radius / bits", cl["leaf_radius_mean"]],
        ]
        if scan.get("queries"):
            rows += [
                [f"scanned per top-{scan['k']} query (mean share)", scan["scanned_fraction_mean"]],
                ["leaves probed (mean / max)", f"{scan['leaves_probed_mean']:.1f} / {scan['leaves_probed_max']}"],
                ["recall of the exhaustive top k", scan["recall_mean"]],
            ]
        sections.append(
            Section(
                "Signatures and the router",
                [
                    "Each chunk's signature is the sign pattern of its embedding; the router splits them top-down by "
                    "k-majority into leaves, and a query scans the leaves nearest to it."
                ],
                [TableData(["", "value"], rows)],
                [f for f in figures if f.id not in ("files", "chunks")],
            )
        )
    placed = sorted(f.id for s in sections for f in s.figures)
    assert placed == sorted(f.id for f in figures), "every figure is placed once"
    return page(f"Ryzanstein: inspect index {Path(report['root'] or report['database']).name}", lines, sections)
