"""`python -m pyserver bench kernels`: ternary GEMV/GEMM speed at BitNet b1.58 2B4T shapes.

GEMV (decode) is reported as effective weight bandwidth against the machine's measured
read bandwidth; it cycles over more than 64 MB of distinct matrices so weights come from
memory, not cache. GEMM (prefill, batch 128) is reported as ternary multiply-accumulates
per second.
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from pyserver import native
from pyserver.bench.timing import median_seconds

# (rows, cols) of the 2B4T projections: q/o, k/v, gate/up, down.
SHAPES_2B4T: list[tuple[int, int]] = [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)]
GEMV_WORKING_SET = 80 << 20  # bytes of distinct matrices cycled through (> 64 MB)
GEMM_BATCH = 128
# Targets from the foundation issue, for 2 threads.
TARGET_GEMV_FRACTION = {"TQ2_0": 0.80, "I2_S": 0.80, "TQ1_0": 0.70}
TARGET_GEMM_TMACS = 0.6
PEER_GEMM_TMACS = 0.3  # bitnet.cpp I2_S prefill at 2B4T shape on this machine class


def random_packed(fmt: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
    n_scales = native.scale_count(fmt, rows, cols)
    scales = np.full(n_scales, 0.5, dtype=np.float32)
    return native.pack(fmt, w, scales)


def _matrices_for_working_set(fmt: str, rows: int, cols: int, rng: np.random.Generator) -> list[Any]:
    one = random_packed(fmt, rows, cols, rng)
    copies = max(2, -(-GEMV_WORKING_SET // one.nbytes))
    pool = native.alloc_weights(copies * one.nbytes).reshape(copies, one.nbytes)
    pool[:] = one  # distinct memory for every copy
    return [native.TernaryMatrix(fmt, pool[i], rows, cols) for i in range(copies)]


def bench_gemv(fmt: str, isa: str, rows: int, cols: int, threads: int, quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    mats = _matrices_for_working_set(fmt, rows, cols, rng)
    x = rng.integers(-127, 128, size=cols, dtype=np.int8)
    native.set_num_threads(threads)
    state = {"i": 0}

    def one() -> None:
        mats[state["i"] % len(mats)].gemv(x, isa)
        state["i"] += 1

    reps = len(mats) * (1 if quick or isa == "scalar" else 3)
    t = median_seconds(one, reps=reps, warmup=len(mats))
    nbytes = mats[0].nbytes
    return {
        "fmt": fmt,
        "isa": isa,
        "shape": [rows, cols],
        "threads": threads,
        "median_us": round(t * 1e6, 2),
        "weight_gbs": round(nbytes / t / 1e9, 2),
        "bytes": nbytes,
    }


def bench_gemm(fmt: str, isa: str, rows: int, cols: int, threads: int, quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    mat = native.TernaryMatrix(fmt, random_packed(fmt, rows, cols, rng), rows, cols)
    x = rng.integers(-127, 128, size=(GEMM_BATCH, cols), dtype=np.int8)
    native.set_num_threads(threads)
    reps = 1 if isa == "scalar" else (3 if quick else 7)
    t = median_seconds(lambda: mat.gemm(x, isa), reps=reps, warmup=0 if isa == "scalar" else 1)
    macs = rows * cols * GEMM_BATCH
    return {
        "fmt": fmt,
        "isa": isa,
        "shape": [rows, cols],
        "threads": threads,
        "batch": GEMM_BATCH,
        "median_ms": round(t * 1e3, 3),
        "tmacs": round(macs / t / 1e12, 4),
        "gops": round(2 * macs / t / 1e9, 1),
    }


def run_kernel_bench(
    *, quick: bool = False, threads: list[int] | None = None, with_scalar: bool = True
) -> dict[str, Any]:
    threads = threads or [1, 2]
    saved_threads = native.num_threads()
    info = native.cpu_info()
    isas = [i for i in native.available_isas() if with_scalar or i != "scalar"]
    if quick:
        isas = [info["auto"]]
    shapes = SHAPES_2B4T[:1] if quick else SHAPES_2B4T
    bw = {str(t): round(native.measure_read_bandwidth(512 << 20, t, 3 if quick else 5), 2) for t in threads}

    gemv, gemm = [], []
    try:
        for fmt in native.FORMATS:
            for isa in isas:
                for rows, cols in shapes:
                    for t in threads:
                        r = bench_gemv(fmt, isa, rows, cols, t, quick)
                        r["fraction_of_bandwidth"] = round(r["weight_gbs"] / bw[str(t)], 3)
                        gemv.append(r)
                        gemm.append(bench_gemm(fmt, isa, rows, cols, t, quick))
    finally:
        native.set_num_threads(saved_threads)

    summary: dict[str, Any] = {}
    top = str(max(threads))
    for fmt in native.FORMATS:
        best_isa = info["auto"]
        fr = [
            r["fraction_of_bandwidth"]
            for r in gemv
            if r["fmt"] == fmt and r["isa"] == best_isa and str(r["threads"]) == top
        ]
        tm = [r["tmacs"] for r in gemm if r["fmt"] == fmt and r["isa"] == best_isa and str(r["threads"]) == top]
        if fr:
            summary[fmt] = {
                "isa": best_isa,
                "threads": int(top),
                "gemv_median_fraction_of_bandwidth": round(float(np.median(fr)), 3),
                "gemv_target_fraction": TARGET_GEMV_FRACTION[fmt],
                "gemm_median_tmacs": round(float(np.median(tm)), 4),
                "gemm_target_tmacs": TARGET_GEMM_TMACS,
                "gemm_ratio_to_bitnet_cpp": round(float(np.median(tm)) / PEER_GEMM_TMACS, 2),
            }
    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "isa": info, "read_bandwidth_gbs": bw},
        "gemv": gemv,
        "gemm": gemm,
        "summary": summary,
    }
