"""Random ternary models at any shape, built in seconds (one random block tiled over every matrix): what the
benchmarks and the setup's speed measurement run, since speed does not depend on the weights' values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pyserver import native
from pyserver.engine.config import ModelConfig
from pyserver.engine.model import Model
from pyserver.engine.weights import FloatTable, LayerWeights, ModelWeights, TernaryTensor

_TILE = 1 << 20


def random_packed(fmt: str, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
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
        out[rows * cols // 4 :] = tile[tile_rows * cols // 4 :]
    else:
        reps = -(-nbytes // tile.size)
        out[:] = np.tile(tile, reps)[:nbytes]
    return out


def random_layers(
    cfg: ModelConfig,
    fmt: str,
    packer: Callable[[str, int, int, np.random.Generator], np.ndarray],
    rng: np.random.Generator,
) -> list[LayerWeights]:
    """Every layer of cfg with norms 1 and one random packed matrix per projection shape (packer), shared by the
    layers (the model copies every tensor into its own weight buffer, so each gets distinct memory there)."""
    shapes = cfg.linear_shapes()
    packed = {name: packer(fmt, r, c, rng) for name, (r, c) in shapes.items()}
    layers = []
    for _ in range(cfg.n_layer):
        layer = LayerWeights()
        layer.norms = {name: np.ones(size, np.float32) for name, size in cfg.norm_sizes().items()}
        layer.linears = {n: TernaryTensor(fmt, packed[n], *shapes[n]) for n in shapes}
        layers.append(layer)
    return layers


def random_ternary_model(cfg: ModelConfig, fmt: str, seed: int = 0) -> Model:
    """A model of the config's shape and architecture with random weights, its projections in the packing fmt."""
    rng = np.random.default_rng(seed)
    layers = random_layers(cfg, fmt, random_packed, rng)
    tile = rng.normal(0, 0.02, size=(min(cfg.vocab, 4096), cfg.n_embd)).astype(np.float16)
    embd = np.tile(tile, (-(-cfg.vocab // tile.shape[0]), 1))[: cfg.vocab]
    table = FloatTable("F16", embd.reshape(-1).view(np.uint8), cfg.vocab, cfg.n_embd)
    weights = ModelWeights(cfg.with_(tied_embeddings=True), table, np.ones(cfg.n_embd, np.float32), layers)
    return Model(weights, None, Path(f"<random {cfg.arch}>"))
