"""`python -m pyserver bench model --shape 2b4t`: whole-model prefill and decode speed on random weights at the
shape of a real published checkpoint (weights need not be trained to measure speed).

Decode is memory-bound, so the report gives the bytes a decode step reads and the fraction of the machine's
measured read bandwidth that the achieved rate implies. No peer's speed appears here: figures from another machine
compare nothing; a comparison needs the peer timed in the same run on the same files.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from pyserver import native
from pyserver.bench.peer_files import QWEN3_SHAPES
from pyserver.bench.timing import median_seconds
from pyserver.engine.config import ModelConfig
from pyserver.engine.model import Model
from pyserver.engine.random_model import random_layers, random_ternary_model
from pyserver.engine.weights import FloatTable, ModelWeights, TernaryTensor
from pyserver.tiers.registry import Registry


@dataclass(frozen=True)
class BenchShape:
    config: ModelConfig
    source: str = ""


def _tier(model_id: str) -> BenchShape:
    """A tier checkpoint's shape, from the registry (models/registry.json)."""
    spec = Registry.load().by_id(model_id)
    assert spec is not None, model_id
    return BenchShape(spec.shape, spec.repo or "")


SHAPES: dict[str, BenchShape] = {
    "2b4t": _tier("bitnet-b1.58-2b4t"),
    "large": BenchShape(
        ModelConfig.for_arch("bitnet", n_embd=1536, n_ff=4096, n_layer=24, n_head=16, n_head_kv=16, vocab=32002),
        "1bitLLM/bitnet_b1_58-large",
    ),
    "3b-falcon": _tier("falcon3-3b-instruct-1.58bit"),
    "7b-falcon": _tier("falcon3-7b-instruct-1.58bit"),
    "10b-falcon": _tier("falcon3-10b-instruct-1.58bit"),
    "tiny": BenchShape(
        ModelConfig.for_arch("bitnet", n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, vocab=1024), "smoke test"
    ),
    # Ternary-Bonsai (Qwen3): every matrix ternary with one FP16 scale per group, the head included.
    "bonsai-1.7b": BenchShape(QWEN3_SHAPES["bonsai-1.7b"], "prism-ml/Ternary-Bonsai-1.7B-gguf"),
    "bonsai-4b": BenchShape(QWEN3_SHAPES["bonsai-4b"], "prism-ml/Ternary-Bonsai-4B-gguf"),
    "bonsai-8b": BenchShape(QWEN3_SHAPES["bonsai-8b"], "prism-ml/Ternary-Bonsai-8B-gguf"),
    "qwen3-tiny": BenchShape(QWEN3_SHAPES["qwen3-tiny"], "smoke test"),
}
GROUP_FORMATS = ("Q2_0", "Q2_0_128")  # Bonsai's packings: one FP16 scale per 64 (mainline) or 128 (PrismML)
ROOFLINE_TARGET = 0.85  # decode reads its bytes at this share of the read bandwidth measured in the same run
PROMPT, DECODE = 128, 64


def build_random_model(shape: BenchShape, fmt: str, seed: int = 0) -> Model:
    """A random model at the shape; a Qwen3 (Bonsai) shape gets group-scaled weights (Q2_0 unless fmt is one of
    GROUP_FORMATS) and a ternary head, as the real files have."""
    if shape.config.arch == "qwen3":
        return random_bonsai_model(shape.config, fmt if fmt in GROUP_FORMATS else "Q2_0", seed)
    return random_ternary_model(shape.config, fmt, seed)


_TILE_WEIGHTS = 1 << 22


def random_group_packed(fmt: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Packed bytes of a random ternary matrix with one scale per group (fmt Q2_0 / Q2_0_128): a random block of
    whole rows, its group scales log-normal around 1 / sqrt(cols * 2/3) (unit output variance, and scales that
    differ, so the model repacks into I2_R16_G*, the layout real Bonsai files run in), tiled over the matrix."""
    tile_rows = max(1, min(rows, _TILE_WEIGHTS // cols))
    codes = rng.integers(-1, 2, size=(tile_rows, cols), dtype=np.int8)
    n_scales = native.scale_count(fmt, tile_rows, cols)
    scales = (np.exp(rng.normal(0, 0.3, n_scales)) / np.sqrt(cols * 2 / 3)).astype(np.float32)
    tile = native.pack(fmt, codes, scales.reshape(tile_rows, -1))
    out = np.empty(native.packed_nbytes(fmt, rows, cols), np.uint8)
    out[:] = np.tile(tile, -(-out.size // tile.size))[: out.size]  # whole rows repeat: blocks never straddle
    return out


class TiledTable(FloatTable):
    """A token embedding of `rows` rows that stores only a tile of them (row i is the tile's i % tile rows): the
    8B shape's 151,936 x 4,096 table would take 1.2 GB as F16, and a decode step reads one row of it."""

    def rows_f32(self, start: int, stop: int) -> np.ndarray:
        return self.take(np.arange(start, stop))

    def take(self, ids: np.ndarray) -> np.ndarray:
        tile = self.data.reshape(-1, self.cols)
        return tile[np.asarray(ids, dtype=np.int64) % tile.shape[0]].astype(np.float32)


def random_bonsai_model(cfg: ModelConfig, fmt: str = "Q2_0", seed: int = 0) -> Model:
    """A random Qwen3 model at cfg's shape as Ternary-Bonsai's files are: projections and the output head ternary
    with FP16 group scales (fmt), norms 1, a tiled F16 embedding. Speed does not depend on the values; the head is
    the ternary one (set_head_ternary) that a Bonsai file's Q2_0 output / tied embedding loads into."""
    rng = np.random.default_rng(seed)
    layers = random_layers(cfg, fmt, random_group_packed, rng)
    tile = rng.normal(0, 1.0, size=(min(cfg.vocab, 4096), cfg.n_embd)).astype(np.float16)
    table = TiledTable("F16", tile.reshape(-1).view(np.uint8), cfg.vocab, cfg.n_embd)
    head = TernaryTensor(fmt, random_group_packed(fmt, cfg.vocab, cfg.n_embd, rng), cfg.vocab, cfg.n_embd)
    weights = ModelWeights(cfg, table, np.ones(cfg.n_embd, np.float32), layers, output_ternary=head)
    return Model(weights, None, Path(f"<random {cfg.arch} {fmt}>"))


def _rss() -> int:
    return int(psutil.Process(os.getpid()).memory_info().rss)


def run_model_bench(
    shape_name: str, fmt: str = "I2_S", threads: list[int] | None = None, reps: int = 3
) -> dict[str, Any]:
    shape = SHAPES[shape_name]
    threads = threads or [1, 2]
    rss0 = _rss()
    t0 = time.perf_counter()
    model = build_random_model(shape, fmt)
    load_s = time.perf_counter() - t0
    rss = _rss() - rss0
    bytes_per_token = model.stats.bytes_per_token
    rng = np.random.default_rng(1)
    prompt = [int(t) for t in rng.integers(0, shape.config.vocab, size=PROMPT)]
    runs = []
    for n in threads:
        native.set_num_threads(n)
        bw = native.measure_read_bandwidth(256 << 20, n, 3)

        def prefill() -> None:
            model.session(n_ctx=PROMPT + DECODE + 8).append(prompt)

        t_prefill = median_seconds(prefill, reps=reps, warmup=1)
        decode_times = []
        for _ in range(reps):
            s = model.session(n_ctx=PROMPT + DECODE + 8)
            out = s.append(prompt)
            assert out is not None  # (None only when cancelled)
            logits = out[-1]
            t1 = time.perf_counter()
            for _ in range(DECODE):
                out = s.append([int(np.argmax(logits))])
                assert out is not None
                logits = out[-1]
            decode_times.append(time.perf_counter() - t1)
        t_decode = float(np.median(decode_times)) / DECODE
        decode_tps = 1.0 / t_decode
        runs.append(
            {
                "threads": n,
                "prefill_tokens_per_s": round(PROMPT / t_prefill, 1),
                "decode_tokens_per_s": round(decode_tps, 1),
                "decode_ms_per_token": round(t_decode * 1e3, 2),
                "measured_read_gbs": round(bw, 1),
                "roofline_tokens_per_s": round(bw * 1e9 / bytes_per_token, 1),
                "roofline_fraction": round(bytes_per_token * decode_tps / (bw * 1e9), 3),
            }
        )
    report: dict[str, Any] = {
        "benchmark": "model",
        "shape": shape_name,
        "source": shape.source,
        "arch": shape.config.arch,
        "format": fmt,
        "params": model.config.n_params,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "isa": model.native.isa,
            "cores": os.cpu_count(),
        },
        "load_seconds": round(load_s, 2),
        "resident_bytes": rss,
        "bytes_read_per_token": bytes_per_token,
        "weight_bytes": model.stats.weight_bytes,
        "head_bytes": model.stats.head_bytes,
        "prompt_tokens": PROMPT,
        "decode_tokens": DECODE,
        "runs": runs,
    }
    two = next((r for r in runs if r["threads"] == 2), None)
    if shape_name == "2b4t" and two is not None:
        report["targets_2_threads"] = {
            "roofline_fraction": {
                "target": ROOFLINE_TARGET,
                "got": two["roofline_fraction"],
                "met": two["roofline_fraction"] >= ROOFLINE_TARGET,
            },
        }
    return report
