"""The meta-backend: for each projection shape x packing a model has, which weight layout decodes fastest on this
machine, found by timing the candidates here once and kept in the user cache per CPU model and engine build.

Candidates are the file's own packing, the decode layout I2_S4 (rows interleaved in fours: one sequential stream
per group of rows, one tensor scale) and the outer-product layout I2_R16 (16 rows interleaved per 64-byte chunk:
one scale, or one per row and group), each on every SIMD ISA level the CPU has. A model's tensors take the layout
that won with the ISA the model runs on; the other ISAs' timings are kept beside it, so `python -m pyserver cpu`
shows whether the picked ISA is the fastest. Decode (GEMV) decides: it streams every weight once per token. Where
two layouts decode within TIE of each other, prefill (GEMM, which unpacks I2_R16 without a transpose) breaks the
tie.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyserver import native
from pyserver.engine.machine import cpu_model, engine_version
from pyserver.engine.random_model import random_packed
from pyserver.paths import cache_dir

WORKING_SET = 48 << 20  # bytes of distinct copies cycled through, so the weights come from memory, not cache
CALLS = 24
GEMM_TOKENS = 64
TIE = 0.05  # decode speeds this close are equal; prefill decides
LAYOUTS = ("file", "decode", "rows16")
_lock = threading.Lock()


@dataclass(frozen=True)
class KernelChoice:
    fmt: str  # the file's packing
    rows: int
    cols: int
    threads: int
    isa: str  # the ISA the model runs on
    layout: str  # "file", "decode" (I2_S4) or "rows16" (I2_R16 / I2_R16_G*)
    gbs: dict[str, float]  # "<isa> <layout>" -> weight bytes read per second (GB/s), the file's bytes
    gemm_gmacs: dict[str, float] = field(default_factory=dict)  # "<isa> <layout>" -> prefill GMAC/s (64 tokens)

    @property
    def key(self) -> str:
        return shape_key(self.fmt, self.rows, self.cols, self.threads)


def shape_key(fmt: str, rows: int, cols: int, threads: int) -> str:
    return f"{fmt} {rows}x{cols} t{threads}"


def cache_path() -> Path:
    return cache_dir() / "kernels.json"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("engine") != engine_version() or data.get("cpu") != cpu_model():
        return {}  # another engine build or another CPU: its timings say nothing here
    return data


def _write(data: dict[str, Any]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: time again next load


def cached_choices() -> list[KernelChoice]:
    return [KernelChoice(**c) for c in _read().get("choices", {}).values()]


def _copies(data: np.ndarray) -> list[np.ndarray]:
    n = max(2, -(-WORKING_SET // max(data.nbytes, 1)))
    pool = native.alloc_weights(n * data.nbytes).reshape(n, data.nbytes)
    pool[:] = data  # distinct memory for every copy
    return [pool[i] for i in range(n)]


def _gbs(fmt: str, copies: list[np.ndarray], rows: int, cols: int, isa: str, file_bytes: int) -> float:
    mats = [native.TernaryMatrix(fmt, c, rows, cols) for c in copies]
    x = np.random.default_rng(0).integers(-127, 128, size=cols, dtype=np.int8)
    for m in mats[:4]:
        m.gemv(x, isa)
    times = []
    for i in range(max(CALLS, len(mats))):
        t0 = time.perf_counter()
        mats[i % len(mats)].gemv(x, isa)
        times.append(time.perf_counter() - t0)
    return round(file_bytes / float(np.median(times)) / 1e9, 2)


def _gemm_gmacs(fmt: str, data: np.ndarray, rows: int, cols: int, isa: str) -> float:
    m = native.TernaryMatrix(fmt, data, rows, cols)
    x = np.random.default_rng(1).integers(-127, 128, size=(GEMM_TOKENS, cols), dtype=np.int8)
    m.gemm(x, isa)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        m.gemm(x, isa)
        times.append(time.perf_counter() - t0)
    return round(rows * cols * GEMM_TOKENS / min(times) / 1e9, 1)


def candidates(fmt: str, packed: np.ndarray, rows: int, cols: int) -> dict[str, tuple[str, np.ndarray]]:
    """The layouts a tensor can run in: its file's packing, I2_S4 (when its blocks share one scale) and I2_R16."""
    out = {"file": (fmt, packed)}
    i2s4 = np.empty(native.packed_nbytes("I2_S4", rows, cols), np.uint8)
    if fmt != "I2_S4" and native.repack_i2s4(fmt, packed, rows, cols, i2s4) is not None:
        out["decode"] = ("I2_S4", i2s4)
    target = native.r16_target(fmt, packed, rows, cols)
    r16 = np.empty(native.packed_nbytes(target, rows, cols), np.uint8)
    native.repack_r16(fmt, packed, rows, cols, r16)
    out["rows16"] = (target, r16)
    return out


def pick(gbs: dict[str, float], gemm: dict[str, float], isa: str) -> str:
    """The fastest decoder on `isa`; among those within TIE of it, the fastest prefill."""
    mine = {key.split(" ", 1)[1]: v for key, v in gbs.items() if key.startswith(f"{isa} ")}
    best = max(mine.values())
    close = [lay for lay, v in mine.items() if v >= best * (1 - TIE)]
    return max(close, key=lambda lay: (gemm.get(f"{isa} {lay}", 0.0), mine[lay]))


def measure(fmt: str, rows: int, cols: int, isa: str) -> KernelChoice:
    """Times every candidate layout on every SIMD ISA for one shape (random weights with varied scales)."""
    rng = np.random.default_rng(0)
    packed = random_packed(fmt, rows, cols, rng)
    gbs: dict[str, float] = {}
    gemm: dict[str, float] = {}
    for layout, (f, data) in candidates(fmt, packed, rows, cols).items():
        copies = _copies(data)
        for level in native.available_isas():
            if level != "scalar":
                gbs[f"{level} {layout}"] = _gbs(f, copies, rows, cols, level, packed.nbytes)
                gemm[f"{level} {layout}"] = _gemm_gmacs(f, data, rows, cols, level)
        del copies
    return KernelChoice(fmt, rows, cols, native.num_threads(), isa, pick(gbs, gemm, isa), gbs, gemm)


def choose(shapes: set[tuple[str, int, int]], isa: str) -> dict[tuple[str, int, int], KernelChoice]:
    """The layout for each (packing, rows, cols), timed on first use and cached."""
    threads = native.num_threads()
    with _lock:
        data = _read()
        choices: dict[str, Any] = dict(data.get("choices", {}))
        out: dict[tuple[str, int, int], KernelChoice] = {}
        changed = False
        for fmt, rows, cols in sorted(shapes):
            key = shape_key(fmt, rows, cols, threads)
            c = choices.get(key)
            if c is None or c.get("isa") != isa or c.get("layout") not in LAYOUTS:
                choice = measure(fmt, rows, cols, isa)
                choices[key] = asdict(choice)
                changed = True
            out[(fmt, rows, cols)] = KernelChoice(**choices[key])
        if changed:
            _write({"engine": engine_version(), "cpu": cpu_model(), "choices": choices})
    return out
