"""`python -m pyserver inspect MODEL`: the weights' statistics (weights.py), the vocabulary clusters
(vocabulary.py), and the report's figures and page, all drawn from the report's own numbers."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.engine.config import LINEAR_NAMES
from pyserver.inspect import svg
from pyserver.inspect.clusters import ClusterTree
from pyserver.inspect.html import Section, TableData, page
from pyserver.inspect.source import ModelSource, open_model
from pyserver.inspect.vocabulary import inspect_vocabulary
from pyserver.inspect.weights import DEFAULT, Options, inspect_weights


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def inspect_model(
    path: str | Path,
    opts: Options = DEFAULT,
    vocabulary: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[dict[str, Any], str]:
    """The report (JSON-ready) and its HTML page."""
    t0 = time.perf_counter()
    src = open_model(path)
    report: dict[str, Any] = {
        "report": "model",
        "path": str(src.path),
        "container": src.container,
        "about": src.about,
        "config": {
            k: getattr(src.config, k) for k in ("arch", "n_embd", "n_ff", "n_layer", "n_head", "n_head_kv", "vocab")
        },
        "options": {"radii_fraction": list(opts.radii), "max_queries": opts.max_queries, "threads": opts.threads},
    }
    report |= inspect_weights(src, opts, progress)
    tree = None
    if vocabulary:
        report["vocabulary"], tree = inspect_vocabulary(src.embedding, src.tokens())
    report["seconds"] = round(time.perf_counter() - t0, 2)
    report["peak_rss_mb"] = peak_rss_mb()
    figures = model_figures(report, tree)
    report["figures"] = [{"id": f.id, "caption": f.caption} for f in figures]
    return report, model_page(src, report, figures)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a terminal or a status line shows (the rest is in the page and in --json)."""
    totals = report["totals"]
    out: dict[str, Any] = {
        "model": report["path"],
        "ternary_weights": totals["weights"],
        "trits_minus_zero_plus": [round(totals[f"{k}_fraction"], 4) for k in ("minus", "zero", "plus")],
        "zero_128_blocks": f"{totals['zero_blocks']} of {totals['blocks']}",
        "near_duplicate_pairs": dict(
            zip((f"<= {r:g}" for r in report["options"]["radii_fraction"]), totals["near_duplicate_pairs"])
        ),
        "diversity_per_layer": [round(lr["diversity"], 4) for lr in report["layers"]],
        "consensus_columns": totals["consensus_columns"],
        "seconds": report["seconds"],
        "peak_rss_mb": report["peak_rss_mb"],
    }
    voc = report.get("vocabulary")
    if voc is not None:
        out["vocabulary_clusters"] = {
            "leaves": voc["clusters"]["leaves"],
            "depth": voc["clusters"]["depth"],
            "balance": round(voc["clusters"]["balance"], 3),
        }
    return out


# ---- figures ------------------------------------------------------------------------------------------------------


def _kinds(report: dict[str, Any]) -> list[str]:
    present = {t["kind"] for t in report["tensors"]}
    return [k for k in LINEAR_NAMES if k in present]


def _grid(report: dict[str, Any], value: Callable[[dict[str, Any]], float]) -> np.ndarray:
    """layers x projection kinds."""
    kinds = _kinds(report)
    grid = np.full((report["config"]["n_layer"], len(kinds)), np.nan)
    for t in report["tensors"]:
        grid[t["layer"], kinds.index(t["kind"])] = value(t)
    return grid


def _layer_labels(report: dict[str, Any]) -> list[str]:
    return [f"layer {i}" for i in range(report["config"]["n_layer"])]


def _summed(
    report: dict[str, Any], kind: str, get: Callable[[dict[str, Any]], dict[str, list[float]]]
) -> tuple[list[float], list[float]]:
    """A histogram summed over the layers' tensors of one kind (they share their bins)."""
    hists = [get(t) for t in report["tensors"] if t["kind"] == kind]
    counts = np.sum([h["counts"] for h in hists], axis=0)
    return [float(c) for c in counts], hists[0]["edges"]


def model_figures(report: dict[str, Any], tree: ClusterTree | None) -> list[svg.Figure]:
    kinds = _kinds(report)
    layers = _layer_labels(report)
    tensors = report["tensors"]
    radii = report["options"]["radii_fraction"]
    figs: list[svg.Figure] = []

    def add(fig_id: str, caption: str, markup: str) -> None:
        figs.append(svg.Figure(fig_id, caption, markup))

    names = [t["name"] for t in tensors]
    add(
        "trits",
        "Trit distribution of every projection: fractions of -1, 0 and +1.",
        svg.stacked_bars(
            "trits",
            names,
            [
                ("-1", [t["trits"]["minus_fraction"] for t in tensors], svg.TRIT_COLOURS["-1"]),
                ("0", [t["trits"]["zero_fraction"] for t in tensors], svg.TRIT_COLOURS["0"]),
                ("+1", [t["trits"]["plus_fraction"] for t in tensors], svg.TRIT_COLOURS["+1"]),
            ],
            "Trit distribution per projection",
            "fraction",
        ),
    )
    maps: list[tuple[str, str, str, Callable[[dict[str, Any]], float], float | None, float | None]] = [
        (
            "zero_fraction",
            "Zero fraction",
            "Share of zero weights per layer and projection.",
            lambda t: t["trits"]["zero_fraction"],
            None,
            None,
        ),
        (
            "row_density_spread",
            "Row density spread (std)",
            "Standard deviation of the rows' density (share of nonzero weights) per layer and projection.",
            lambda t: t["row_density"]["std"],
            0.0,
            None,
        ),
        (
            "zero_blocks",
            "All-zero 128-weight blocks (fraction)",
            "Share of 128-weight row blocks that are all zero: what a kernel skipping zero blocks would skip.",
            lambda t: t["zero_blocks"]["fraction"],
            0.0,
            None,
        ),
        (
            "diversity",
            "Signature diversity",
            "Mean pairwise Hamming distance of the rows' signatures over their bits (2 per weight).",
            lambda t: t["diversity"]["normalised"],
            0.0,
            None,
        ),
        (
            "diversity_ratio",
            "Diversity / independent rows",
            "Diversity over what independent rows with the tensor's trit fractions would have (1: no shared "
            "structure; below 1: rows agree more than chance).",
            lambda t: t["diversity"]["ratio"],
            None,
            None,
        ),
        (
            "near_duplicates",
            f"Near-duplicate pairs within {radii[-1]:g} of the bits",
            f"Pairs of rows whose signatures differ in at most {radii[-1]:g} of their bits.",
            lambda t: float(t["near_duplicates"]["pairs"][-1]),
            0.0,
            None,
        ),
        (
            "consensus",
            "Consensus columns",
            "Columns (inputs) where at least 3 in 4 of the nonzero weights share a sign.",
            lambda t: float(t["consensus"]["columns"]),
            0.0,
            None,
        ),
        (
            "scale",
            "Mean effective scale",
            "Mean of the stored scales times the extra scale the engine applies.",
            lambda t: t["scales"]["effective_mean"],
            None,
            None,
        ),
        (
            "scale_spread",
            "Scale spread (std / mean of stored scales)",
            "Relative spread of a tensor's stored block scales (0: one scale for the whole tensor).",
            lambda t: t["scales"]["std"] / t["scales"]["mean"] if t["scales"]["mean"] else 0.0,
            0.0,
            None,
        ),
    ]
    for fig_id, title, caption, value, lo, hi in maps:
        add(fig_id, caption, svg.heatmap(fig_id, _grid(report, value), layers, kinds, title, lo, hi))
    for kind in kinds:
        counts, edges = _summed(report, kind, lambda t: t["row_density"]["histogram"])
        fid = f"row_density.{kind}"
        add(
            fid,
            f"Row density (share of nonzero weights) of {kind} rows, all layers.",
            svg.histogram(fid, counts, edges, f"Row density: {kind}", "row density"),
        )
    for kind in kinds:
        rows_map = [t["density_profile"]["rows"] for t in tensors if t["kind"] == kind]
        cols_map = [t["density_profile"]["cols"] for t in tensors if t["kind"] == kind]
        fid = f"density_rows.{kind}"
        add(
            fid,
            f"Density along the rows of {kind} (row ranges left to right), per layer.",
            svg.heatmap(
                fid, rows_map, layers, [f"r{i}" for i in range(len(rows_map[0]))], f"Density by row range: {kind}"
            ),
        )
        fid = f"density_cols.{kind}"
        add(
            fid,
            f"Density along the columns (inputs) of {kind}, per layer.",
            svg.heatmap(
                fid, cols_map, layers, [f"c{i}" for i in range(len(cols_map[0]))], f"Density by column range: {kind}"
            ),
        )
    for kind in kinds:
        counts, edges = _summed(report, kind, lambda t: t["near_duplicates"]["nearest"]["histogram"])
        fid = f"nearest.{kind}"
        add(
            fid,
            f"Distance from each {kind} row to its nearest other row (scanned signature bits), all layers.",
            svg.histogram(fid, counts, edges, f"Nearest other row: {kind}", "normalised Hamming distance"),
        )
    counts = np.sum([t["consensus"]["histogram"]["counts"] for t in tensors], axis=0)
    edges = tensors[0]["consensus"]["histogram"]["edges"]
    add(
        "agreement",
        "Column agreement |plus - minus| / nonzero over every column of every projection.",
        svg.histogram("agreement", [float(c) for c in counts], edges, "Column sign agreement", "agreement"),
    )
    ls = report["layer_similarity"]
    if ls["matrix"]:
        add(
            "layer_similarity",
            "Similarity of the same sampled rows between layers (1 - normalised distance), "
            "averaged over the projections.",
            svg.heatmap("layer_similarity", ls["matrix"], layers, layers, "Layer similarity"),
        )
    rs = report["row_similarity"]
    if rs is not None:
        labels = [f"row {r}" for r in rs["rows"]]
        add(
            "row_similarity",
            f"Similarity of the most alike rows of {rs['tensor']} (each row and its nearest).",
            svg.heatmap("row_similarity", rs["matrix"], labels, labels, f"Row similarity: {rs['tensor']}", None, 1.0),
        )
    voc = report.get("vocabulary")
    if voc is not None and tree is not None:
        add(
            "vocab_tree",
            "The router's clustering of the token embedding's signatures, four levels deep.",
            svg.icicle("vocab_tree", tree.layout(4), voc["tokens"], "Vocabulary cluster tree"),
        )
        sizes = np.array(voc["clusters"]["leaf_sizes"])
        top = int(sizes.max()) if len(sizes) else 1
        counts_l, edges_l = np.histogram(sizes, bins=min(40, max(1, top)), range=(0, top))
        add(
            "vocab_leaves",
            "Tokens per leaf cluster.",
            svg.histogram(
                "vocab_leaves",
                [float(c) for c in counts_l],
                [float(e) for e in edges_l],
                "Vocabulary leaf sizes",
                "tokens in the leaf",
                "leaves",
            ),
        )
        bb = voc["bit_balance"]
        add(
            "vocab_bits",
            "Share of tokens whose embedding is positive, per dimension.",
            svg.histogram(
                "vocab_bits",
                bb["counts"],
                bb["edges"],
                "Embedding sign balance per dimension",
                "share of tokens > 0",
                "dimensions",
            ),
        )
    return figs


# ---- the page -----------------------------------------------------------------------------------------------------


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def model_page(src: ModelSource, report: dict[str, Any], figures: list[svg.Figure]) -> str:
    by_id = {f.id: f for f in figures}
    totals = report["totals"]
    radii = report["options"]["radii_fraction"]
    cfg = report["config"]

    def figs(*prefixes: str) -> list[svg.Figure]:
        return [f for f in figures if any(f.id == p or f.id.startswith(p + ".") for p in prefixes)]

    lines = [
        f"{report['path']} ({report['container']}, {cfg['arch']}): {cfg['n_layer']} layers, n_embd {cfg['n_embd']},"
        f" n_ff {cfg['n_ff']}, vocabulary {cfg['vocab']}; {totals['weights']:,} ternary weights.",
        f"Read in {report['seconds']} s, peak memory {report['peak_rss_mb']} MB.",
    ]
    pair_rows: list[list[object]] = [
        [f"near-duplicate row pairs within {r:g} of the bits", f"{p:,}"]
        for r, p in zip(radii, totals["near_duplicate_pairs"])
    ]
    summary_table = TableData(
        ["", "value"],
        [
            ["-1 / 0 / +1", " / ".join(_pct(totals[f"{k}_fraction"]) for k in ("minus", "zero", "plus"))],
            ["all-zero 128-weight blocks", f"{totals['zero_blocks']:,} of {totals['blocks']:,}"],
            *pair_rows,
            ["consensus columns", f"{totals['consensus_columns']:,}"],
            ["tensors whose near-duplicate queries were a sample", totals["sampled_tensors"]],
        ],
    )
    layer_table = TableData(
        ["layer", "zero fraction", "diversity", "diversity / independent", "zero blocks", "consensus columns"]
        + [f"pairs ≤ {r:g}" for r in radii],
        [
            [
                f"layer {lr['layer']}",
                lr["zero_fraction"],
                lr["diversity"],
                lr["diversity_ratio"],
                lr["zero_blocks"],
                lr["consensus_columns"],
                *lr["near_duplicate_pairs"],
            ]
            for lr in report["layers"]
        ],
    )
    tensor_table = TableData(
        [
            "tensor",
            "shape",
            "storage",
            "-1",
            "0",
            "+1",
            "row density std",
            "zero blocks",
            "diversity",
            "ratio",
            "nearest (mean)",
            f"pairs ≤ {radii[-1]:g}",
            "consensus",
            "scale mean",
            "scales distinct",
        ],
        [
            [
                t["name"],
                f"{t['rows']}x{t['cols']}",
                t["storage"],
                t["trits"]["minus_fraction"],
                t["trits"]["zero_fraction"],
                t["trits"]["plus_fraction"],
                t["row_density"]["std"],
                t["zero_blocks"]["count"],
                t["diversity"]["normalised"],
                t["diversity"]["ratio"],
                t["near_duplicates"]["nearest"]["mean"],
                t["near_duplicates"]["pairs"][-1],
                t["consensus"]["columns"],
                t["scales"]["effective_mean"],
                t["scales"]["distinct"],
            ]
            for t in report["tensors"]
        ],
    )
    sections = [
        Section("Summary", [], [summary_table, layer_table]),
        Section(
            "Trits and density",
            [
                "Each projection's weights are -1, 0 or +1. Density is the share of nonzero weights; a block of 128 "
                "weights of a row that is all zero is work a kernel could skip."
            ],
            figures=figs(
                "trits",
                "zero_fraction",
                "row_density_spread",
                "zero_blocks",
                "row_density",
                "density_rows",
                "density_cols",
            ),
        ),
        Section(
            "Signatures: diversity and redundancy",
            [
                "A row's signature is its sign pattern (two bits per weight); the Hamming distance between two "
                "signatures is the L1 distance between the rows. Near-duplicates are pairs of rows within a radius, "
                "found with the index's popcount scan."
            ],
            figures=figs(
                "diversity", "diversity_ratio", "near_duplicates", "nearest", "layer_similarity", "row_similarity"
            ),
        ),
        Section(
            "Consensus columns and scales",
            ["A consensus column is an input most rows read with the same sign."],
            figures=figs("consensus", "agreement", "scale", "scale_spread"),
        ),
    ]
    voc = report.get("vocabulary")
    if voc is not None:
        cl = voc["clusters"]
        top = TableData(
            ["cluster", "tokens", "radius", "tokens nearest its centroid"],
            [
                [f"#{i}", c["size"], c["radius"], "  ".join(repr(x) for x in c.get("examples", c["nearest"]))]
                for i, c in enumerate(cl["top_clusters"])
            ],
        )
        sections.append(
            Section(
                "Vocabulary clusters",
                [
                    f"{voc['tokens']:,} token signatures of {voc['signature_bits']} bits (the embedding's signs); "
                    f"diversity {voc['diversity']:.3f}. The index router's clustering: {cl['leaves']} leaves, depth "
                    f"{cl['depth']}, leaf sizes {cl['leaf_size']['min']} to {cl['leaf_size']['max']} (median "
                    f"{cl['leaf_size']['median']:g}), balance {cl['balance']:.3f}."
                ],
                [top],
                figs("vocab_tree", "vocab_leaves", "vocab_bits"),
            )
        )
    sections.append(Section("Every projection", [], [tensor_table], folded=True))
    placed = sorted(f.id for s in sections for f in s.figures)
    assert placed == sorted(by_id), "every figure is placed once"
    return page(f"Ryzanstein: inspect {Path(report['path']).name}", lines, sections)
