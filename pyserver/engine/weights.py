"""Loader-neutral weights: what every file format is turned into before the native model is built."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

from pyserver import native
from pyserver.engine.config import ModelConfig
from pyserver.engine.traits import ModelTraits

NORM_NAMES = ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm")
TERNARY_FORMATS = ("TQ1_0", "TQ2_0", "I2_S")
FLOAT_TABLE_TYPES = ("F32", "F16", "BF16")


@dataclass
class TernaryTensor:
    """A packed ternary projection [rows, cols] in one of the native packings, plus an extra output scale."""

    fmt: str
    data: np.ndarray  # uint8, packed bytes (may be a view into a memory-mapped file)
    rows: int
    cols: int
    scale: float = 1.0


@dataclass
class FloatTable:
    """A [rows, cols] float table in its stored type (F32, F16, BF16, Q8_0, ...), read row by row on demand."""

    type_name: str
    data: np.ndarray  # raw bytes (uint8) or an already-typed float array
    rows: int
    cols: int

    def _row_bytes(self) -> int:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[self.type_name]]
        return self.cols // block * size

    def rows_f32(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as float32 [n, cols]."""
        if self.data.dtype != np.uint8:
            return np.ascontiguousarray(self.data[start:stop], dtype=np.float32)
        rb = self._row_bytes()
        raw = self.data[start * rb : stop * rb]
        if self.type_name == "F32":
            return raw.view(np.float32).reshape(-1, self.cols).copy()
        if self.type_name == "F16":
            return raw.view(np.float16).reshape(-1, self.cols).astype(np.float32)
        if self.type_name == "BF16":
            return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(-1, self.cols)
        out = dequantize(raw.reshape(stop - start, rb), GGMLQuantizationType[self.type_name])
        return np.ascontiguousarray(out, dtype=np.float32).reshape(-1, self.cols)

    def take(self, ids: np.ndarray) -> np.ndarray:
        """float32 rows for the given ids, [len(ids), cols]."""
        if self.data.dtype != np.uint8:
            return np.ascontiguousarray(self.data[ids], dtype=np.float32)
        if self.type_name in ("F32", "F16", "BF16"):  # one gather for the whole batch of tokens
            table = self.data.view({"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[self.type_name])
            rows = table.reshape(self.rows, self.cols)[np.asarray(ids, dtype=np.int64)]
            if self.type_name == "BF16":
                return (rows.astype(np.uint32) << 16).view(np.float32)
            return rows.astype(np.float32)
        out = np.empty((len(ids), self.cols), dtype=np.float32)
        for i, t in enumerate(ids):
            out[i] = self.rows_f32(int(t), int(t) + 1)[0]
        return out

    def chunks(self, chunk_rows: int = 8192) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.rows, chunk_rows):
            yield start, self.rows_f32(start, min(self.rows, start + chunk_rows))


@dataclass
class LayerWeights:
    norms: dict[str, np.ndarray] = field(default_factory=dict)  # float32 vectors
    linears: dict[str, TernaryTensor] = field(default_factory=dict)


@dataclass
class ModelWeights:
    config: ModelConfig
    token_embd: FloatTable
    output_norm: np.ndarray
    layers: list[LayerWeights]
    output: FloatTable | None = None  # None: tied to token_embd
    keep_alive: list[Any] = field(default_factory=list)  # open files the arrays point into
    traits: ModelTraits = field(default_factory=ModelTraits)


def ternarize_absmean(w: np.ndarray) -> tuple[np.ndarray, float]:
    """BitNet b1.58's rule for latent weights: scale = mean|w|, codes = clip(round(w / scale), -1, 1)."""
    w = np.asarray(w, dtype=np.float32)
    scale = float(np.abs(w).mean())
    if scale == 0.0 or not np.isfinite(scale):
        return np.zeros(w.shape, np.int8), 1.0
    return np.clip(np.round(w / scale), -1, 1).astype(np.int8), scale


def ternarize_exact(w: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Weights already of the form {-s, 0, +s} (a converter applied the ternary rule): codes and s, else None."""
    w = np.asarray(w, dtype=np.float32)
    s = float(np.abs(w).max())
    if s == 0.0 or not np.isfinite(s):
        return None
    codes = np.round(w / s)
    if not np.array_equal(codes * np.float32(s), w):
        return None
    return codes.astype(np.int8), s


def pack_ternary(codes: np.ndarray, scale: float) -> TernaryTensor:
    """Packs codes [rows, cols] with one tensor scale as I2_S (the integer-only kernel path) when the shape allows,
    else TQ2_0."""
    rows, cols = codes.shape
    if cols % 128 == 0:
        fmt, scales = "I2_S", np.array([scale], np.float32)
    else:
        fmt, scales = "TQ2_0", np.full((rows, cols // 256 if cols % 256 == 0 else 1), scale, np.float32)
    return TernaryTensor(fmt, native.pack(fmt, np.ascontiguousarray(codes), scales), rows, cols)
