"""What a ternary model's weights say, read without running it: per projection the trit distribution, row density,
all-zero 128-weight blocks, density along rows and columns, signature diversity, near-duplicate rows, consensus
columns and scales; per layer the same summed up, and how alike the layers are.

One tensor at a time, in blocks of rows (`source.py`): what is kept per tensor is its row signatures (two bits per
weight, the packed size of the tensor itself) and per-row and per-column counts, so memory is bounded by the largest
tensor, whatever the model's size. The numbers are plain counts over the trits the engine multiplies by; each has a
numpy reference in tests/inspect/.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyserver.inspect.signatures import (
    NearDuplicates,
    distances,
    independent_distance,
    mean_pairwise_distance,
    near_duplicates,
    row_signatures,
    signature_bytes,
)
from pyserver.inspect.source import ModelSource, Projection

ZERO_BLOCK = 128  # columns per block for the all-zero count: an I2_S unit, half a TQ block
RADII = (0.0, 0.02, 0.05, 0.10)  # near-duplicate radii, as fractions of a signature's bits (2 per weight)
CONSENSUS = 0.5  # a consensus column: |plus - minus| >= this share of its nonzero weights (3 in 4 agree)
DENSITY_BINS = 40  # row density histogram over [0, 1]
NEAREST_BINS = 50  # nearest-row distance histogram over [0, 1]
AGREEMENT_BINS = 20  # column agreement histogram over [0, 1]
PROFILE_BINS = 32  # density along the rows and along the columns
SAMPLE_ROWS = 64  # rows per tensor compared across layers
TOP_COLUMNS = 8


@dataclass(frozen=True)
class Options:
    max_queries: int = 1 << 13  # near-duplicate queries per tensor (all rows up to this many)
    threads: int = 1
    radii: tuple[float, ...] = RADII
    block_weights: int = 1 << 22


DEFAULT = Options()


def histogram(values: np.ndarray, bins: int) -> dict[str, list[float]]:
    """A histogram over [0, 1] in equal bins (1.0 in the last bin)."""
    counts, edges = np.histogram(np.clip(values, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def _summary(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "p5": 0.0, "p50": 0.0, "p95": 0.0}
    v = values.astype(np.float64)
    p5, p50, p95 = np.percentile(v, [5, 50, 95])
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "p5": float(p5),
        "p50": float(p50),
        "p95": float(p95),
    }


def _binned(values: np.ndarray, bins: int) -> np.ndarray:
    """Sums of consecutive runs of values into `bins` bins (element i into bin i * bins // n)."""
    n = len(values)
    idx = np.arange(n, dtype=np.int64) * bins // max(1, n)
    return np.bincount(idx, weights=values.astype(np.float64), minlength=bins)[:bins]


@dataclass
class TensorResult:
    report: dict[str, Any]
    sample: np.ndarray  # signatures of SAMPLE_ROWS evenly spaced rows, for the layer similarity
    similar_rows: np.ndarray  # the rows nearest to each other, for a row similarity matrix
    similarity: np.ndarray  # their pairwise similarity (1 - normalised distance)


@dataclass
class _Read:
    """What one pass over a tensor's blocks of rows gathers."""

    sigs: np.ndarray  # [rows, signature bytes]
    plus_cols: np.ndarray  # +1 weights per column
    minus_cols: np.ndarray
    row_nonzero: np.ndarray  # nonzero weights per row
    zero_blocks: int  # all-zero ZERO_BLOCK-weight blocks of rows
    scales: np.ndarray  # every stored scale


def _read(p: Projection, block_weights: int) -> _Read:
    rows, cols = p.rows, p.cols
    r = _Read(
        np.zeros((rows, signature_bytes(cols)), np.uint8),
        np.zeros(cols, np.int64),
        np.zeros(cols, np.int64),
        np.zeros(rows, np.int64),
        0,
        np.zeros(0, np.float32),
    )
    n_blocks = cols // ZERO_BLOCK
    stored: list[np.ndarray] = []
    for b in p.blocks(block_weights):
        c = b.codes
        s = row_signatures(c)
        r.sigs[b.rows] = s
        r.plus_cols += np.count_nonzero(c > 0, axis=0)
        r.minus_cols += np.count_nonzero(c < 0, axis=0)
        nz = np.bitwise_count(s)  # each nonzero weight sets one bit; a block's 128 weights are 32 bytes
        r.row_nonzero[b.rows] = nz.sum(axis=1, dtype=np.int64)
        if n_blocks:
            per_block = nz[:, : n_blocks * ZERO_BLOCK // 4].reshape(len(b.rows), n_blocks, -1).sum(axis=2)
            r.zero_blocks += int(np.count_nonzero(per_block == 0))
        if b.scales.size:
            stored.append(b.scales.reshape(-1))
    if stored:
        r.scales = np.concatenate(stored)
    return r


def _trits(minus: int, zero: int, plus: int) -> dict[str, Any]:
    probs = np.array([minus, zero, plus], np.float64) / max(1, minus + zero + plus)
    return {
        "minus": minus,
        "zero": zero,
        "plus": plus,
        "minus_fraction": float(probs[0]),
        "zero_fraction": float(probs[1]),
        "plus_fraction": float(probs[2]),
        "entropy_bits": float(-(probs[probs > 0] * np.log2(probs[probs > 0])).sum()),
    }


def _consensus(plus_cols: np.ndarray, minus_cols: np.ndarray) -> dict[str, Any]:
    """Columns whose nonzero weights mostly share a sign: the inputs most rows read the same way."""
    nonzero = plus_cols + minus_cols
    agreement = np.abs(plus_cols - minus_cols) / np.maximum(1, nonzero)
    consensus = np.flatnonzero((agreement >= CONSENSUS) & (nonzero > 0))
    top = np.lexsort((np.arange(len(agreement)), -agreement))[:TOP_COLUMNS]
    return {
        "threshold": CONSENSUS,
        "columns": int(len(consensus)),
        "fraction": len(consensus) / max(1, len(agreement)),
        "top": [
            {
                "column": int(j),
                "agreement": float(agreement[j]),
                "sign": int(np.sign(plus_cols[j] - minus_cols[j])),
                "nonzero": int(nonzero[j]),
            }
            for j in top
        ],
        "histogram": histogram(agreement[nonzero > 0], AGREEMENT_BINS),
    }


def _scales(scales: np.ndarray, extra: float) -> dict[str, Any]:
    """The stored scales, and their mean as the engine applies them (times the extra scale)."""
    s = scales.astype(np.float64)
    some = len(s) > 0
    return {
        "stored": int(len(s)),
        "distinct": int(len(np.unique(scales))),
        "min": float(s.min()) if some else 0.0,
        "max": float(s.max()) if some else 0.0,
        "mean": float(s.mean()) if some else 0.0,
        "std": float(s.std()) if some else 0.0,
        "extra": extra,
        "effective_mean": float((s * extra).mean()) if some else 0.0,
    }


def _alike_rows(sigs: np.ndarray, nd: NearDuplicates, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows nearest to another row with those rows, and their pairwise similarities."""
    order = np.argsort(nd.nearest, kind="stable")[: SAMPLE_ROWS // 2]
    close = np.concatenate([nd.queries[order], nd.nearest_row[order]])
    close = np.unique(close[close >= 0])[:SAMPLE_ROWS]
    if not len(close):
        return close, np.zeros((0, 0))
    return close, 1.0 - distances(sigs[close][:, None, :], sigs[close][None, :, :]) / bits


def inspect_projection(p: Projection, opts: Options = DEFAULT) -> TensorResult:
    t0 = time.perf_counter()
    rows, cols, bits = p.rows, p.cols, 2 * p.cols
    r = _read(p, opts.block_weights)
    plus, minus = int(r.plus_cols.sum()), int(r.minus_cols.sum())
    density = r.row_nonzero / max(1, cols)
    mean_dist = mean_pairwise_distance(r.plus_cols, r.minus_cols, rows)  # exact, from the column counts
    indep = independent_distance(plus, minus, rows * cols, cols)
    radii_bits = [int(math.floor(f * bits)) for f in opts.radii]
    nd = near_duplicates(r.sigs, radii_bits, opts.max_queries, opts.threads)
    nearest = nd.nearest / max(1, nd.scan_bits)
    blocks = rows * (cols // ZERO_BLOCK)
    col_profile = _binned(r.plus_cols + r.minus_cols, PROFILE_BINS) / _binned(np.full(cols, rows), PROFILE_BINS)
    row_profile = _binned(r.row_nonzero, PROFILE_BINS) / _binned(np.full(rows, cols), PROFILE_BINS)
    report: dict[str, Any] = {
        "name": p.name,
        "layer": p.layer,
        "kind": p.kind,
        "rows": rows,
        "cols": cols,
        "storage": p.storage,
        "trits": _trits(minus, rows * cols - plus - minus, plus),
        "row_density": {**_summary(density), "histogram": histogram(density, DENSITY_BINS)},
        "zero_blocks": {
            "width": ZERO_BLOCK,
            "count": r.zero_blocks,
            "total": blocks,
            "fraction": r.zero_blocks / max(1, blocks),
        },
        "density_profile": {
            "rows": [float(v) for v in row_profile[: min(PROFILE_BINS, rows)]],
            "cols": [float(v) for v in col_profile[: min(PROFILE_BINS, cols)]],
        },
        "diversity": {
            "mean_distance_bits": mean_dist,
            "normalised": mean_dist / bits,
            "independent": indep / bits,
            "ratio": mean_dist / indep if indep else 0.0,
        },
        "near_duplicates": {
            "radii_fraction": list(opts.radii),
            "radii_bits": radii_bits,
            "pairs": nd.pairs,
            "queries": int(len(nd.queries)),
            "sampled": bool(len(nd.queries) < rows),
            "scan_bits": nd.scan_bits,
            "nearest": {**_summary(nearest), "histogram": histogram(nearest, NEAREST_BINS)},
            "examples": [{"rows": [a, b], "distance_bits": d} for a, b, d in nd.examples],
        },
        "consensus": _consensus(r.plus_cols, r.minus_cols),
        "scales": _scales(r.scales, p.extra_scale),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    n_sample = min(SAMPLE_ROWS, rows)
    sample = r.sigs[np.arange(n_sample, dtype=np.int64) * rows // max(1, n_sample)].copy()
    close, sim = _alike_rows(r.sigs, nd, bits)
    return TensorResult(report, sample, close, sim)


def layer_similarity(samples: dict[str, list[np.ndarray]], cols: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """Per pair of layers, the mean similarity (1 - normalised distance) of the same sampled rows of the same
    projection, averaged over the projections: near 1 - (the rows' diversity) for independent layers, 1 for equal
    ones."""
    kinds = [k for k in samples if samples[k]]
    if not kinds:
        return np.zeros((0, 0)), []
    n_layer = len(samples[kinds[0]])
    out = np.zeros((n_layer, n_layer))
    for k in kinds:
        s = np.stack(samples[k])  # [layers, rows, bytes]
        for a in range(n_layer):
            out[a] += 1.0 - distances(s[a][None], s).mean(axis=-1) / (2 * cols[k])
    return out / len(kinds), kinds


def inspect_weights(
    src: ModelSource, opts: Options = DEFAULT, progress: Callable[[int, int, str], None] | None = None
) -> dict[str, Any]:
    """Every projection of the model, then the per-layer summary and the layer similarity."""
    tensors: list[dict[str, Any]] = []
    samples: dict[str, list[np.ndarray]] = {}
    cols: dict[str, int] = {}
    best: tuple[float, str, np.ndarray, np.ndarray] | None = None
    for i, p in enumerate(src.projections):
        if progress is not None:
            progress(i, len(src.projections), p.name)
        r = inspect_projection(p, opts)
        tensors.append(r.report)
        samples.setdefault(p.kind, []).append(r.sample)
        cols[p.kind] = p.cols
        closeness = r.report["near_duplicates"]["nearest"]["mean"]
        if len(r.similar_rows) > 1 and (best is None or closeness < best[0]):
            best = (closeness, p.name, r.similar_rows, r.similarity)
    if progress is not None:
        progress(len(src.projections), len(src.projections), "done")
    sim, kinds = layer_similarity(samples, cols)
    layers = []
    for layer in range(src.config.n_layer):
        mine = [t for t in tensors if t["layer"] == layer]
        weights = sum(t["rows"] * t["cols"] for t in mine)
        layers.append(
            {
                "layer": layer,
                "zero_fraction": sum(t["trits"]["zero"] for t in mine) / max(1, weights),
                "diversity": float(np.mean([t["diversity"]["normalised"] for t in mine])) if mine else 0.0,
                "diversity_ratio": float(np.mean([t["diversity"]["ratio"] for t in mine])) if mine else 0.0,
                "zero_blocks": sum(t["zero_blocks"]["count"] for t in mine),
                "near_duplicate_pairs": [
                    sum(t["near_duplicates"]["pairs"][j] for t in mine) for j in range(len(opts.radii))
                ],
                "consensus_columns": sum(t["consensus"]["columns"] for t in mine),
            }
        )
    weights_total = sum(t["rows"] * t["cols"] for t in tensors)
    totals = {
        "weights": weights_total,
        **{k: sum(t["trits"][k] for t in tensors) for k in ("minus", "zero", "plus")},
        "zero_blocks": sum(t["zero_blocks"]["count"] for t in tensors),
        "blocks": sum(t["zero_blocks"]["total"] for t in tensors),
        "near_duplicate_pairs": [
            sum(t["near_duplicates"]["pairs"][j] for t in tensors) for j in range(len(opts.radii))
        ],
        "consensus_columns": sum(t["consensus"]["columns"] for t in tensors),
        "sampled_tensors": sum(1 for t in tensors if t["near_duplicates"]["sampled"]),
    }
    for k in ("minus", "zero", "plus"):
        totals[f"{k}_fraction"] = totals[k] / max(1, weights_total)
    totals["zero_block_fraction"] = totals["zero_blocks"] / max(1, totals["blocks"])
    return {
        "tensors": tensors,
        "layers": layers,
        "totals": totals,
        "layer_similarity": {"kinds": kinds, "matrix": [[round(float(v), 6) for v in row] for row in sim]},
        "row_similarity": None
        if best is None
        else {
            "tensor": best[1],
            "rows": [int(r) for r in best[2]],
            "matrix": [[round(float(v), 6) for v in row] for row in best[3]],
        },
    }
