"""Random ternary models at any shape, built in seconds (one random block tiled over every matrix): what the
benchmarks and the setup's speed measurement run, since speed does not depend on the weights' values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyserver import native
from pyserver.engine.config import ModelConfig
from pyserver.engine.model import Model
from pyserver.engine.weights import FloatTable, LayerWeights, ModelWeights, TernaryTensor

_TILE = 1 << 20


def _valid_packed(fmt: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Packed bytes of a random ternary matrix, built from one tiled random block (fast at any size)."""
    nbytes = native.packed_nbytes(fmt, rows, cols)
    tile_rows = max(1, min(rows, _TILE * 4 // cols))
    w = rng.integers(-1, 2, size=(tile_rows, cols), dtype=np.int8)
    scales = np.full(native.scale_count(fmt, tile_rows, cols), 0.01, np.float32)
    tile = native.pack(fmt, w, scales)
    out = np.empty(nbytes, np.uint8)
    if fmt == "I2_S":  # codes, then the 32-byte tail holding the tensor scale
        codes = tile[: tile_rows * cols // 4]
        body = out[: rows * cols // 4]
        reps = -(-body.size // codes.size)
        body[:] = np.tile(codes, reps)[: body.size]
        out[rows * cols // 4:] = tile[tile_rows * cols // 4:]
    else:
        reps = -(-nbytes // tile.size)
        out[:] = np.tile(tile, reps)[:nbytes]
    return out


def random_ternary_model(arch: str, n_embd: int, n_ff: int, n_layer: int, n_head: int, n_head_kv: int, vocab: int,
                         fmt: str, head_dim: int | None = None, seed: int = 0) -> Model:
    """A model of the architecture (bitnet, bitnet-b1.58, llama) with random weights in the packing fmt."""
    rng = np.random.default_rng(seed)
    head_dim = head_dim or n_embd // n_head
    act = "relu2" if arch == "bitnet-b1.58" else "silu"
    cfg = ModelConfig(arch=arch, n_embd=n_embd, n_ff=n_ff, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv,
                      head_dim=head_dim, rope_dim=head_dim, vocab=vocab, context_length=4096, act=act,
                      sub_norms=arch != "llama", rope_neox=arch != "llama")
    qd, kvd = n_head * head_dim, n_head_kv * head_dim
    shapes = {"attn_q": (qd, cfg.n_embd), "attn_k": (kvd, cfg.n_embd), "attn_v": (kvd, cfg.n_embd),
              "attn_output": (cfg.n_embd, qd), "ffn_gate": (cfg.n_ff, cfg.n_embd), "ffn_up": (cfg.n_ff, cfg.n_embd),
              "ffn_down": (cfg.n_embd, cfg.n_ff)}
    packed = {name: _valid_packed(fmt, r, c, rng) for name, (r, c) in shapes.items()}
    layers = []
    for _ in range(cfg.n_layer):
        layer = LayerWeights()
        layer.norms = {"attn_norm": np.ones(cfg.n_embd, np.float32), "ffn_norm": np.ones(cfg.n_embd, np.float32)}
        if cfg.sub_norms:
            layer.norms.update(attn_sub_norm=np.ones(qd, np.float32), ffn_sub_norm=np.ones(cfg.n_ff, np.float32))
        # Distinct memory per layer (the model copies every tensor into its own weight buffer).
        layer.linears = {n: TernaryTensor(fmt, packed[n], *shapes[n]) for n in shapes}
        layers.append(layer)
    tile = rng.normal(0, 0.02, size=(min(vocab, 4096), cfg.n_embd)).astype(np.float16)
    embd = np.tile(tile, (-(-vocab // tile.shape[0]), 1))[: vocab]
    table = FloatTable("F16", embd.reshape(-1).view(np.uint8), vocab, cfg.n_embd)
    weights = ModelWeights(cfg, table, np.ones(cfg.n_embd, np.float32), layers)
    return Model(weights, None, Path(f"<random {arch}>"))
