"""A model file read in place for inspection: its shape, and each ternary projection and the token embedding as
blocks of rows, read from the file when asked for and unpacked one block at a time, so a model of any size is read
with a few megabytes beside the one tensor's signatures (never the whole model, never a whole large tensor's trits).

Every format the engine loads, through the loaders' own header readers and checks (`GGUFFile`, `gguf_config`,
`SafetensorsFile`, `hf_config`) and the native unpackers: GGUF `TQ1_0`, `TQ2_0` and bitnet.cpp's `I2_S`
projections, GGUF float projections (ternarized as the loader does: exact `{-s, 0, +s}` floats, else the absmean
rule), Hugging Face packed BitNet checkpoints (`quant_method: "bitnet"`, four rows per byte) and latent float
checkpoints. The trits are what the engine multiplies by; the scales are those the file stores (block scales, the
tensor scale, a GGUF `.scale` tensor or a checkpoint's `weight_scale`), folded into `Projection.extra_scale` where
the loader folds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from pyserver import native
from pyserver.engine.config import ARCHITECTURES, ModelConfig
from pyserver.engine.errors import ModelLoadError, unreachable
from pyserver.engine.gguf_file import GGUFFile, TensorInfo, read_file_range
from pyserver.engine.gguf_loader import TABLE_TYPES, gguf_config
from pyserver.engine.safetensors_file import SafetensorsFile
from pyserver.engine.safetensors_loader import (
    HF_LINEARS,
    HF_NORMS,
    CheckpointTensors,
    hf_config,
    read_json_file,
    unpack_hf_bitnet,
)
from pyserver.engine.weights import (
    FLOAT_TABLE_TYPES,
    TERNARY_FORMATS,
    FloatTable,
    ternarize_absmean,
    ternarize_exact,
)

BLOCK_WEIGHTS = 1 << 22  # weights unpacked at once: 4 MB of int8 trits, plus temporaries of the same order


@dataclass(frozen=True)
class TritRows:
    """Some rows of a ternary projection: which rows, their trits, and the scales the file stores with them."""

    rows: np.ndarray  # int64 row indices, ascending
    codes: np.ndarray  # int8 [len(rows), cols], values in {-1, 0, +1}
    scales: np.ndarray  # float32: block scales of these rows (TQ*), or a tensor scale with the first block only


@dataclass(frozen=True)
class Projection:
    """A ternary projection of the model, read on demand."""

    name: str  # blk.<layer>.<kind>
    layer: int
    kind: str  # attn_q, ..., ffn_down
    rows: int
    cols: int
    storage: str  # how the file stores it: TQ1_0, TQ2_0, I2_S, HF-packed, or a float type (ternarized)
    extra_scale: float  # a factor the engine applies beside the stored scales (GGUF .scale, 1/weight_scale)
    _blocks: Callable[[int], Iterator[TritRows]] = field(repr=False)

    def blocks(self, max_weights: int = BLOCK_WEIGHTS) -> Iterator[TritRows]:
        """The whole tensor in blocks of rows of at most max_weights weights (at least one row)."""
        return self._blocks(max_weights)


@dataclass(frozen=True)
class Table:
    """A float table (the token embedding): rows [start, stop) as float32 on demand."""

    name: str
    rows: int
    cols: int
    storage: str
    read: Callable[[int, int], np.ndarray] = field(repr=False)

    def blocks(self, max_values: int = BLOCK_WEIGHTS) -> Iterator[tuple[int, np.ndarray]]:
        step = max(1, max_values // max(1, self.cols))
        for start in range(0, self.rows, step):
            yield start, self.read(start, min(self.rows, start + step))


@dataclass(frozen=True)
class ModelSource:
    path: Path
    container: str  # "GGUF" or "safetensors"
    config: ModelConfig
    projections: list[Projection]
    embedding: Table
    tokens: Callable[[], list[str]] = field(repr=False)  # the vocabulary's token strings (may be fewer than rows)
    about: dict[str, str] = field(default_factory=dict)  # a few header facts for the report


def _row_steps(rows: int, row_weights: int, max_weights: int) -> Iterator[tuple[int, int]]:
    step = max(1, max_weights // max(1, row_weights))
    for r0 in range(0, rows, step):
        yield r0, min(rows, r0 + step)


# ---- GGUF ---------------------------------------------------------------------------------------------------------


def _gguf_packed(g: GGUFFile, info: TensorInfo, rows: int, cols: int) -> Callable[[int], Iterator[TritRows]]:
    """Blocks of a TQ1_0 / TQ2_0 / I2_S tensor: each block's bytes read from the file and unpacked natively. I2_S
    rows are followed by one 32-byte tail holding the tensor scale, read once and appended to every block."""
    fmt = info.type_name
    try:
        need = native.packed_nbytes(fmt, rows, cols)
    except ValueError as exc:
        raise ModelLoadError(g.path, f"tensor '{info.name}': {exc}") from exc
    if info.nbytes < need:
        raise ModelLoadError(g.path, f"tensor '{info.name}' has {info.nbytes} bytes, its packing needs {need}")
    one = native.packed_nbytes(fmt, 1, cols)
    row_bytes = native.packed_nbytes(fmt, 2, cols) - one
    tail_bytes = one - row_bytes  # I2_S: the scale's 32 bytes after all rows; the TQ packings: none

    def blocks(max_weights: int) -> Iterator[TritRows]:
        tail = read_file_range(g.path, g.identity, info.offset + rows * row_bytes, tail_bytes) if tail_bytes else None
        for r0, r1 in _row_steps(rows, cols, max_weights):
            n = r1 - r0
            data = read_file_range(g.path, g.identity, info.offset + r0 * row_bytes, n * row_bytes)
            if tail is not None:
                data = np.concatenate([data, tail])
            codes, scales = native.unpack(fmt, data, n, cols)
            if tail is not None and r0 > 0:  # the one tensor scale, counted with the first block only
                scales = scales[:0]
            yield TritRows(np.arange(r0, r1, dtype=np.int64), codes, scales.reshape(-1).astype(np.float32))

    return blocks


def _float_rows(read: Callable[[int, int], np.ndarray], rows: int, cols: int) -> Callable[[int], Iterator[TritRows]]:
    """Blocks of a float projection, ternarized as the loader does: `ternarize_exact` (floats already {-s, 0, +s})
    else `ternarize_absmean`, over the whole tensor. A tensor that fits one block goes through those very
    functions; a larger one is read three times (max and mean of |w|, the exactness check, the codes), which can
    differ from the loader only for a weight exactly half-way between two codes."""

    def whole(max_weights: int) -> Iterator[TritRows]:
        if rows * cols <= max_weights:
            w = read(0, rows)
            codes, s = ternarize_exact(w) or ternarize_absmean(w)
            yield TritRows(np.arange(rows, dtype=np.int64), codes, np.array([s], np.float32))
            return
        amax, asum = 0.0, 0.0
        for r0, r1 in _row_steps(rows, cols, max_weights):
            a = np.abs(read(r0, r1))
            amax, asum = max(amax, float(a.max())), asum + float(a.sum(dtype=np.float64))
        exact = amax > 0.0 and math.isfinite(amax)
        if exact:
            for r0, r1 in _row_steps(rows, cols, max_weights):
                w = read(r0, r1)
                if not np.array_equal(np.round(w / amax) * np.float32(amax), w):
                    exact = False
                    break
        mean = asum / (rows * cols)
        zero = not exact and (mean == 0.0 or not math.isfinite(mean))
        s = amax if exact else (1.0 if zero else mean)
        for r0, r1 in _row_steps(rows, cols, max_weights):
            w = read(r0, r1)
            codes = np.zeros(w.shape, np.int8) if zero else np.clip(np.round(w / np.float32(s)), -1, 1).astype(np.int8)
            yield TritRows(np.arange(r0, r1, dtype=np.int64), codes, np.array([s] if r0 == 0 else [], np.float32))

    return whole


def _gguf_row_bytes(type_name: str, cols: int) -> int:
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    return cols // block * size


def _gguf_float_reader(g: GGUFFile, info: TensorInfo, cols: int) -> Callable[[int, int], np.ndarray]:
    rb = _gguf_row_bytes(info.type_name, cols)

    def read(r0: int, r1: int) -> np.ndarray:
        raw = read_file_range(g.path, g.identity, info.offset + r0 * rb, (r1 - r0) * rb)
        return FloatTable(info.type_name, raw, r1 - r0, cols).rows_f32(0, r1 - r0)

    return read


def _gguf_tensor(g: GGUFFile, name: str) -> TensorInfo:
    info = g.tensors.get(name)
    if info is None:
        raise ModelLoadError(g.path, f"missing tensor '{name}'")
    return info


def _gguf_projection(g: GGUFFile, layer: int, kind: str, rows: int, cols: int) -> Projection:
    info = _gguf_tensor(g, f"blk.{layer}.{kind}.weight")
    if info.shape != (rows, cols):
        raise ModelLoadError(g.path, f"tensor '{info.name}' has shape {list(info.shape)}, expected [{rows}, {cols}]")
    extra = 1.0
    scale_info = g.tensors.get(f"blk.{layer}.{kind}.scale")
    if scale_info is not None:
        if scale_info.n_elements != 1 or scale_info.type_name not in FLOAT_TABLE_TYPES:
            raise ModelLoadError(g.path, f"tensor '{scale_info.name}' must hold a single float")
        extra = float(FloatTable(scale_info.type_name, g.tensor_data(scale_info.name), 1, 1).rows_f32(0, 1)[0, 0])
    if info.type_name in TERNARY_FORMATS:
        blocks = _gguf_packed(g, info, rows, cols)
    elif info.type_name in FLOAT_TABLE_TYPES:
        blocks = _float_rows(_gguf_float_reader(g, info, cols), rows, cols)
    else:
        raise ModelLoadError(
            g.path,
            f"tensor '{info.name}' has type {info.type_name}, which is not ternary"
            f" (supported: {', '.join(TERNARY_FORMATS + FLOAT_TABLE_TYPES)})",
        )
    return Projection(f"blk.{layer}.{kind}", layer, kind, rows, cols, info.type_name, extra, blocks)


def _open_gguf(path: Path) -> ModelSource:
    g = GGUFFile(path)
    if g.architecture not in ARCHITECTURES:
        raise ModelLoadError(
            g.path, f"unsupported architecture {g.architecture!r} (supported: {', '.join(ARCHITECTURES)})"
        )
    cfg = gguf_config(g)
    projections = [
        _gguf_projection(g, i, kind, rows, cols)
        for i in range(cfg.n_layer)
        for kind, (rows, cols) in cfg.linear_shapes().items()
    ]
    embd = _gguf_tensor(g, "token_embd.weight")
    if embd.type_name not in TABLE_TYPES:
        raise ModelLoadError(g.path, f"tensor 'token_embd.weight' has unsupported type {embd.type_name}")
    table = Table("token_embd", cfg.vocab, cfg.n_embd, embd.type_name, _gguf_float_reader(g, embd, cfg.n_embd))

    def tokens() -> list[str]:
        found = g.metadata.get("tokenizer.ggml.tokens")
        return [str(t) for t in found] if isinstance(found, list) else []

    about = {"architecture": cfg.arch, "name": str(g.metadata.get("general.name", path.stem))}
    return ModelSource(g.path, "GGUF", cfg, projections, table, tokens, about)


# ---- Hugging Face checkpoints -------------------------------------------------------------------------------------


class _Shards(CheckpointTensors):
    """The checkpoint's tensors (the loader's own table of them), read a block of rows at a time."""

    def float_reader(self, name: str, cols: int) -> Callable[[int, int], np.ndarray]:
        f = self.get(name)
        dtype, _shape, start, _stop = f.entries[name]
        if dtype not in FLOAT_TABLE_TYPES:
            raise ModelLoadError(f.path, f"tensor '{name}' has dtype {dtype}; expected F32, F16 or BF16")
        rb = cols * np.dtype({"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[dtype]).itemsize

        def read(r0: int, r1: int) -> np.ndarray:
            raw = read_file_range(f.path, f.identity, start + r0 * rb, (r1 - r0) * rb)
            return FloatTable(dtype, raw, r1 - r0, cols).rows_f32(0, r1 - r0)

        return read


def _hf_packed(
    f: SafetensorsFile, name: str, rows: int, cols: int, scale: float
) -> Callable[[int], Iterator[TritRows]]:
    """transformers' packing: row i * per + p in byte row p at bits 2i (per = ceil(rows / 4)); blocks of byte
    rows, so each block holds four runs of rows."""
    _dtype, _shape, start, _stop = f.entries[name]
    per = (rows + 3) // 4

    def blocks(max_weights: int) -> Iterator[TritRows]:
        for p0, p1 in _row_steps(per, 4 * cols, max_weights):
            m = p1 - p0
            raw = read_file_range(f.path, f.identity, start + p0 * cols, m * cols).reshape(m, cols)
            try:
                codes = unpack_hf_bitnet(raw, 4 * m)  # the four parts of the byte rows, part by part
            except ValueError as exc:
                raise ModelLoadError(f.path, f"tensor '{name}': {exc}") from exc
            idx = (np.arange(4, dtype=np.int64)[:, None] * per + np.arange(p0, p1, dtype=np.int64)[None, :]).ravel()
            order = np.argsort(idx, kind="stable")
            order = order[idx[order] < rows]
            yield TritRows(idx[order], codes[order], np.array([scale] if p0 == 0 else [], np.float32))

    return blocks


def _hf_projection(t: _Shards, layer: int, kind: str, rows: int, cols: int, packed: bool) -> Projection:
    name = f"model.layers.{layer}.{HF_LINEARS[kind]}"
    f = t.get(f"{name}.weight")
    dtype, shape, *_ = f.entries[f"{name}.weight"]
    if packed and dtype == "U8":
        if shape != ((rows + 3) // 4, cols):
            raise ModelLoadError(
                f.path,
                f"tensor '{name}.weight' has shape {list(shape)}, a packed [{rows}, {cols}] needs"
                f" [{(rows + 3) // 4}, {cols}]",
            )
        ws = 1.0
        if f"{name}.weight_scale" in t.where:
            sf = t.get(f"{name}.weight_scale")
            ws = float(sf.float32(f"{name}.weight_scale").reshape(-1)[0])
        if not math.isfinite(ws) or ws == 0.0:
            raise ModelLoadError(f.path, f"tensor '{name}.weight_scale' is zero or not finite")
        blocks = _hf_packed(f, f"{name}.weight", rows, cols, 1.0 / ws)
        return Projection(f"blk.{layer}.{kind}", layer, kind, rows, cols, "HF-packed", 1.0, blocks)
    if shape != (rows, cols):
        raise ModelLoadError(f.path, f"tensor '{name}.weight' has shape {list(shape)}, expected [{rows}, {cols}]")
    blocks = _float_rows(t.float_reader(f"{name}.weight", cols), rows, cols)
    return Projection(f"blk.{layer}.{kind}", layer, kind, rows, cols, dtype, 1.0, blocks)


def _open_checkpoint(directory: Path) -> ModelSource:
    cfg_path = directory / "config.json"
    cfg = read_json_file(cfg_path, "config.json")
    if not isinstance(cfg, dict):
        raise ModelLoadError(cfg_path, f"config.json must be a JSON object, is {type(cfg).__name__}")
    qcfg = cfg.get("quantization_config") or {}
    packed = isinstance(qcfg, dict) and qcfg.get("quant_method") == "bitnet"
    t = _Shards(directory)
    embd_name = "model.embed_tokens.weight"
    ef = t.get(embd_name)
    embd_shape = ef.shape(embd_name)
    if len(embd_shape) != 2 or ef.dtype(embd_name) not in FLOAT_TABLE_TYPES:
        raise ModelLoadError(ef.path, f"tensor '{embd_name}' must be a 2-D F32/F16/BF16 table")
    tie = cfg.get("tie_word_embeddings")
    config = hf_config(
        cfg,
        cfg_path,
        vocab=embd_shape[0],
        sub_norms=any(f"model.layers.0.{n}.weight" in t.where for n in HF_NORMS["attn_sub_norm"]),
        tied=("lm_head.weight" not in t.where) if tie is None else bool(tie),
    )
    if embd_shape[1] != config.n_embd:
        raise ModelLoadError(ef.path, f"tensor '{embd_name}' has {embd_shape[1]} columns, hidden_size {config.n_embd}")
    projections = [
        _hf_projection(t, i, kind, rows, cols, packed)
        for i in range(config.n_layer)
        for kind, (rows, cols) in config.linear_shapes().items()
    ]
    table = Table(
        "token_embd", config.vocab, config.n_embd, ef.dtype(embd_name), t.float_reader(embd_name, config.n_embd)
    )

    def tokens() -> list[str]:
        path = directory / "tokenizer.json"
        if not path.is_file():
            return []
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        return [tok.id_to_token(i) or "" for i in range(min(config.vocab, tok.get_vocab_size()))]

    about = {"architecture": config.arch, "name": directory.name, "packed": "yes" if packed else "no (latent)"}
    return ModelSource(directory, "safetensors", config, projections, table, tokens, about)


def open_model(path: str | Path) -> ModelSource:
    """A GGUF file, or a Hugging Face checkpoint directory (or one of its .safetensors files), read in place. Bad
    files raise the loaders' `ModelLoadError`."""
    p = Path(path)
    if p.is_dir():
        return _open_checkpoint(p)
    if (problem := unreachable(p)) is not None:
        raise ModelLoadError(p, problem)
    if p.suffix == ".safetensors":
        return _open_checkpoint(p.parent)
    return _open_gguf(p)
