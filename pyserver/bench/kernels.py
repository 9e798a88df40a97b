"""`python -m pyserver bench kernels`: ternary GEMV/GEMM speed at BitNet b1.58 2B4T shapes.

GEMV (decode) is reported as effective weight bandwidth against the machine's measured
read bandwidth; it cycles over more than 64 MB of distinct matrices so weights come from
memory, not cache. GEMM (prefill, batch 128) is reported as ternary multiply-accumulates
per second.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyserver import native
from pyserver.bench.timing import median_seconds
from pyserver.engine.machine import cpu_model

# (rows, cols) of the 2B4T projections: q/o, k/v, gate/up, down.
SHAPES_2B4T: list[tuple[int, int]] = [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)]
GEMV_WORKING_SET = 80 << 20  # bytes of distinct matrices cycled through (> 64 MB)
GEMM_BATCH = 128
# Targets, for 2 threads: decode reads its weights at this share of the read bandwidth measured in the same run.
# (Speed against other engines is `bench peers`: a peer timed in the same run on the same files.)
# The decode layouts (I2_S4, I2_R16*) are what models run on, so they carry the engine's decode target (0.85); the
# file packings are timed as they are. Q2_0 files have no SIMD GEMV of their own (models repack them into I2_R16_G64
# / G128 at load), so they are not timed here.
BENCH_FORMATS = native.SIMD_GEMV_FORMATS
TARGET_GEMV_FRACTION = {fmt: (0.85 if fmt in native.LAYOUT_FORMATS else 0.80) for fmt in BENCH_FORMATS} | {
    "TQ1_0": 0.70
}


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
        for fmt in BENCH_FORMATS:
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
    for fmt in BENCH_FORMATS:
        per_isa = {}
        for isa in isas:
            key = (fmt, isa, top)
            fr = [r["fraction_of_bandwidth"] for r in gemv if (r["fmt"], r["isa"], str(r["threads"])) == key]
            tm = [r["tmacs"] for r in gemm if (r["fmt"], r["isa"], str(r["threads"])) == key]
            if fr:
                per_isa[isa] = {
                    "gemv_median_fraction_of_bandwidth": round(float(np.median(fr)), 3),
                    "gemm_median_tmacs": round(float(np.median(tm)), 4),
                }
        if per_isa:
            simd = {k: v for k, v in per_isa.items() if k != "scalar"}
            summary[fmt] = {
                "threads": int(top),
                "picked": info["auto"],
                "gemv_target_fraction": TARGET_GEMV_FRACTION[fmt],
                "per_isa": per_isa,
                # The picked path must be the fastest one timed (the issue: never pick a path nobody timed).
                "fastest_gemv": max(simd, key=lambda k: simd[k]["gemv_median_fraction_of_bandwidth"]) if simd else None,
                "fastest_gemm": max(simd, key=lambda k: simd[k]["gemm_median_tmacs"]) if simd else None,
            }
    return {
        "machine": {"cpu": cpu_model(), "isa": info, "read_bandwidth_gbs": bw},
        "gemv": gemv,
        "gemm": gemm,
        "summary": summary,
    }
