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

NORM_NAMES = ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm", "attn_q_norm", "attn_k_norm")
TERNARY_FORMATS = ("TQ1_0", "TQ2_0", "I2_S", "Q2_0", "Q2_0_128")
FLOAT_TABLE_TYPES = ("F32", "F16", "BF16")
# Ternary packings whose rows are stored one after another (so a table's rows can be read one at a time): what a
# ternary token embedding / LM head may be stored in (Ternary-Bonsai's are).
TERNARY_TABLE_FORMATS = ("TQ1_0", "TQ2_0", "Q2_0", "Q2_0_128")
# Group sizes a float tensor's per-group scales are looked for at, largest first, and the packing each becomes.
GROUP_PACKINGS = {128: "Q2_0_128", 64: "Q2_0"}


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


class PackedTable(FloatTable):
    """A ternary table (Ternary-Bonsai's token embedding) kept in its packed bytes: rows are unpacked to float32
    (codes times their block scales) when looked up."""

    def _row_bytes(self) -> int:
        return native.packed_nbytes(self.type_name, 1, self.cols)

    def rows_f32(self, start: int, stop: int) -> np.ndarray:
        rb = self._row_bytes()
        codes, scales = native.unpack(self.type_name, self.data[start * rb : stop * rb], stop - start, self.cols)
        group = self.cols // scales.shape[1] if scales.ndim == 2 else self.cols
        return (codes.astype(np.float32) * np.repeat(scales.reshape(stop - start, -1), group, axis=1)).reshape(
            stop - start, self.cols
        )

    def take(self, ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), self.cols), dtype=np.float32)
        for i, t in enumerate(ids):
            out[i] = self.rows_f32(int(t), int(t) + 1)[0]
        return out


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
    # A ternary output head (packed): the head runs on the projections' kernels instead of a quantized float table.
    output_ternary: TernaryTensor | None = None
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


def ternarize_groups(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Weights exactly of the form t * s_g, t in {-1, 0, +1}, one scale per `group` consecutive weights of a row
    (Ternary-Bonsai's F16 / BF16 files): (codes [rows, cols], scales [rows, cols/group]), else None. Found exactly,
    never fitted: s_g is the group's largest |w|, every weight must be -s_g, 0 or +s_g, and s_g must be an FP16
    value (what Q2_0 stores)."""
    rows, cols = w.shape
    if cols % group:
        return None
    g = np.asarray(w, dtype=np.float32).reshape(rows, cols // group, group)
    s = np.abs(g).max(axis=2)
    if not np.all(np.isfinite(s)) or not np.array_equal(s.astype(np.float16).astype(np.float32), s):
        return None
    safe = np.where(s == 0, 1, s)[..., None]
    codes = np.round(g / safe)
    if not np.array_equal(codes * safe, g):
        return None
    return codes.astype(np.int8).reshape(rows, cols), s


def pack_groups(table: FloatTable) -> TernaryTensor | None:
    """A float table whose values are exactly ternary times one scale per group of 128 or 64 (checked in chunks
    of rows, largest group first), packed as Q2_0_128 / Q2_0 with those scales; None where it is not."""
    for group, fmt in GROUP_PACKINGS.items():
        if table.cols % group:
            continue
        out = np.empty(native.packed_nbytes(fmt, table.rows, table.cols), np.uint8)
        rb = native.packed_nbytes(fmt, 1, table.cols)
        for start, rows in table.chunks():
            found = ternarize_groups(rows, group)
            if found is None:
                break
            out[start * rb : (start + len(rows)) * rb] = native.pack(fmt, *found)
        else:
            return TernaryTensor(fmt, out, table.rows, table.cols)
    return None


class NotTernaryError(ValueError):
    """A float tensor whose values are not exactly ternary (per tensor or per group) where the file did not ask for
    them to be ternarized."""


ABSMEAN_HINT = "ternarize them with BitNet's absmean rule"


def ternary_from_floats(table: FloatTable, absmean: bool) -> TernaryTensor:
    """A float projection as packed ternary: exactly {-s, 0, +s} (one scale; BitNet converters write these), else
    exactly ternary times one scale per group of 128 or 64 (Ternary-Bonsai's F16 / BF16 files; packed Q2_0_128 /
    Q2_0 with those scales, never re-ternarized), else, if `absmean`, BitNet's absmean rule for latent weights;
    otherwise NotTernaryError."""
    w = table.rows_f32(0, table.rows)
    found = ternarize_exact(w)
    if found is not None:
        return pack_ternary(*found)
    grouped = pack_groups(FloatTable("F32", w, table.rows, table.cols))
    if grouped is not None:
        return grouped
    if not absmean:
        raise NotTernaryError(
            "holds floats that are not ternary times one scale per tensor or per group of 64 or 128 weights"
        )
    return pack_ternary(*ternarize_absmean(w))


def pack_ternary(codes: np.ndarray, scale: float) -> TernaryTensor:
    """Packs codes [rows, cols] with one tensor scale as I2_S (the integer-only kernel path) when the shape allows,
    else TQ2_0."""
    rows, cols = codes.shape
    if cols % 128 == 0:
        fmt, scales = "I2_S", np.array([scale], np.float32)
    else:
        fmt, scales = "TQ2_0", np.full((rows, cols // 256 if cols % 256 == 0 else 1), scale, np.float32)
    return TernaryTensor(fmt, native.pack(fmt, np.ascontiguousarray(codes), scales), rows, cols)
