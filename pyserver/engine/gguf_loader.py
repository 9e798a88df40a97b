"""GGUF files -> `ModelWeights`: llama.cpp `bitnet`, bitnet.cpp `bitnet-b1.58` (I2_S) and llama-style ternary models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pyserver import native
from pyserver.engine.config import ARCHITECTURES, ModelConfig
from pyserver.engine.errors import ModelLoadError, short_repr
from pyserver.engine.gguf_file import GGUFFile, TensorInfo
from pyserver.engine.traits import ModelTraits
from pyserver.engine.weights import (
    FLOAT_TABLE_TYPES,
    TERNARY_FORMATS,
    TERNARY_TABLE_FORMATS,
    FloatTable,
    LayerWeights,
    ModelWeights,
    NotTernaryError,
    PackedTable,
    TernaryTensor,
    pack_groups,
    ternary_from_floats,
)

# Tables (embedding, output) we can read: plain floats, plus anything gguf.quants can dequantize.
TABLE_TYPES = (
    *FLOAT_TABLE_TYPES,
    *("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"),
    *TERNARY_TABLE_FORMATS,  # Ternary-Bonsai's embedding and head: rows unpacked on lookup, the head run ternary
)
# Architectures whose float projections must be exactly ternary (per tensor or per group) unless the file asks for
# the absmean rule with this key: a Qwen3 file with latent floats is not a ternary model, and re-ternarizing it with
# one scale per tensor would be silently wrong. BitNet files keep today's rule (exact, else absmean).
STRICT_TERNARY_ARCHS = ("qwen3",)
TERNARIZE_KEY = "ryzanstein.ternarize"
MAX_COUNT = 1 << 31  # any dimension or count in the metadata (the native engine takes 64-bit sizes; none is near)


class _Keys:
    """The model's own metadata keys (`{arch}.*`), each checked for its type and range before use."""

    def __init__(self, g: GGUFFile) -> None:
        self.g, self.arch = g, g.architecture

    def fail(self, name: str, problem: str) -> ModelLoadError:
        return ModelLoadError(self.g.path, f"metadata '{self.arch}.{name}' {problem}")

    def raw(self, name: str, default: Any = None) -> Any:
        value = self.g.metadata.get(f"{self.arch}.{name}", default)
        if value is None:
            raise ModelLoadError(self.g.path, f"missing metadata key '{self.arch}.{name}'")
        return value

    def count(self, name: str, default: int | None = None) -> int:
        value = self.raw(name, default)
        if isinstance(value, np.ndarray):  # per-layer arrays (some converters): this engine needs them uniform
            if value.size == 0 or value.dtype.kind not in "iu" or not np.all(value == value.flat[0]):
                raise self.fail(name, "varies per layer (or is not integers), which this engine does not support")
            value = value.flat[0]
        if (
            not isinstance(value, (int, np.integer))
            or isinstance(value, (bool, np.bool_))
            or not 0 < int(value) < MAX_COUNT
        ):
            raise self.fail(name, f"must be a positive integer below {MAX_COUNT}, got {short_repr(value)}")
        return int(value)

    def number(self, name: str, default: float) -> float:
        value = self.raw(name, default)
        if (
            not isinstance(value, (int, float, np.integer, np.floating))
            or isinstance(value, (bool, np.bool_))
            or not np.isfinite(value)
            or value <= 0
        ):
            raise self.fail(name, f"must be a positive finite number, got {short_repr(value)}")
        return float(value)


def gguf_config(g: GGUFFile) -> ModelConfig:
    """The model's shape from the file's header (metadata and tensor infos; no tensor data is read), every key
    checked. An architecture this engine does not run still gets its shape described, so it can be listed and
    explained."""
    keys = _Keys(g)
    embd = _tensor(g, "token_embd.weight")
    if len(embd.shape) != 2:
        raise ModelLoadError(g.path, "tensor 'token_embd.weight' must be two-dimensional")
    n_embd, n_head = keys.count("embedding_length"), keys.count("attention.head_count")
    if embd.shape[1] != n_embd:
        raise ModelLoadError(
            g.path, f"tensor 'token_embd.weight' has {embd.shape[1]} columns, embedding_length is {n_embd}"
        )
    vocab = embd.shape[0]
    if keys.count("vocab_size", vocab) != vocab:
        raise keys.fail("vocab_size", f"is {keys.count('vocab_size')} but 'token_embd.weight' has {vocab} rows")
    n_head_kv = keys.count("attention.head_count_kv", n_head)
    if n_head % n_head_kv:
        raise keys.fail(
            "attention.head_count",
            f"({n_head}) must be a multiple of '{keys.arch}.attention.head_count_kv' ({n_head_kv})",
        )
    head_dim = keys.count("attention.key_length", n_embd // n_head if n_embd % n_head == 0 else None)
    if head_dim % 2:
        raise keys.fail("attention.key_length", f"({head_dim}): the head dimension must be even")
    rope_dim = keys.count("rope.dimension_count", head_dim)
    if rope_dim > head_dim or rope_dim % 2:
        raise keys.fail(
            "rope.dimension_count", f"({rope_dim}) must be even and at most the head dimension ({head_dim})"
        )
    return ModelConfig.for_arch(
        keys.arch,
        n_embd=n_embd,
        n_ff=keys.count("feed_forward_length"),
        n_layer=keys.count("block_count"),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        rope_dim=rope_dim,
        vocab=vocab,
        context_length=keys.count("context_length", 4096),
        rope_base=keys.number("rope.freq_base", 10000.0),
        norm_eps=keys.number("attention.layer_norm_rms_epsilon", 1e-5),
        tied_embeddings="output.weight" not in g.tensors,
    )


def _tensor(g: GGUFFile, name: str) -> TensorInfo:
    info = g.tensors.get(name)
    if info is None:
        raise ModelLoadError(g.path, f"missing tensor '{name}'")
    return info


def _vector(g: GGUFFile, name: str, length: int) -> np.ndarray:
    info = _tensor(g, name)
    if info.n_elements != length:
        raise ModelLoadError(g.path, f"tensor '{name}' has {info.n_elements} values, expected {length}")
    if info.type_name not in FLOAT_TABLE_TYPES:
        raise ModelLoadError(g.path, f"tensor '{name}' has unsupported type {info.type_name} for a norm")
    return FloatTable(info.type_name, g.tensor_data(name), 1, length).rows_f32(0, 1)[0].copy()


def _ternary_check(g: GGUFFile, name: str, t: TernaryTensor) -> TernaryTensor:
    """Refuses a packed tensor holding the 2-bit code 3 (+2: not ternary; the kernels' integer bounds assume there
    is none), naming it (native.trit_counts raises ValueError for it)."""
    try:
        native.trit_counts(t.fmt, t.data, t.rows, t.cols)
    except ValueError as exc:
        raise ModelLoadError(g.path, f"tensor '{name}': {exc}") from exc
    return t


def _table(g: GGUFFile, name: str, rows: int | None, cols: int) -> FloatTable:
    info = _tensor(g, name)
    if len(info.shape) != 2 or info.shape[1] != cols or (rows is not None and info.shape[0] != rows):
        raise ModelLoadError(
            g.path, f"tensor '{name}' has shape {list(info.shape)}, expected [{rows or 'vocab'}, {cols}]"
        )
    if info.type_name not in TABLE_TYPES:
        raise ModelLoadError(
            g.path, f"tensor '{name}' has unsupported type {info.type_name} (supported: {', '.join(TABLE_TYPES)})"
        )
    if info.type_name in TERNARY_TABLE_FORMATS:
        _packed_size(g, name, info, info.shape[0], cols)
        packed = _ternary_check(g, name, TernaryTensor(info.type_name, g.tensor_data(name), info.shape[0], cols))
        return PackedTable(packed.fmt, packed.data, packed.rows, packed.cols)
    return FloatTable(info.type_name, g.tensor_data(name), info.shape[0], cols)


def _packed_size(g: GGUFFile, name: str, info: TensorInfo, rows: int, cols: int) -> None:
    try:  # the packing's own rules (row length a multiple of its block), before native code sees the bytes
        need = native.packed_nbytes(info.type_name, rows, cols)
    except ValueError as exc:
        raise ModelLoadError(g.path, f"tensor '{name}': {exc}") from exc
    if info.nbytes < need:
        raise ModelLoadError(g.path, f"tensor '{name}' has {info.nbytes} bytes, its packing needs {need}")


def _ternary_head(g: GGUFFile, name: str, table: FloatTable, strict: bool) -> TernaryTensor | None:
    """The table as a packed ternary head when it is one: stored ternary (rows as they are), or, in a Qwen3 file,
    F16 / BF16 values exactly ternary times a scale per group of 128 or 64 (Ternary-Bonsai's F16 files)."""
    if isinstance(table, PackedTable):  # code 3 already refused by _table
        return TernaryTensor(table.type_name, table.data, table.rows, table.cols)
    if strict and table.type_name in FLOAT_TABLE_TYPES:
        return pack_groups(table)
    return None


def _absmean_allowed(g: GGUFFile) -> bool:
    """Whether latent float projections may be ternarized with the absmean rule: always in BitNet files; in a Qwen3
    file only when it says so (TERNARIZE_KEY = "absmean")."""
    if g.architecture not in STRICT_TERNARY_ARCHS:
        return True
    value = g.metadata.get(TERNARIZE_KEY)
    if value is not None and value != "absmean":
        raise ModelLoadError(g.path, f"metadata '{TERNARIZE_KEY}' must be \"absmean\", got {short_repr(value)}")
    return value == "absmean"


def _linear(g: GGUFFile, name: str, rows: int, cols: int) -> TernaryTensor:
    info = _tensor(g, name)
    if info.shape != (rows, cols):
        raise ModelLoadError(g.path, f"tensor '{name}' has shape {list(info.shape)}, expected [{rows}, {cols}]")
    if info.type_name in TERNARY_FORMATS:
        _packed_size(g, name, info, rows, cols)
        return _ternary_check(g, name, TernaryTensor(info.type_name, g.tensor_data(name), rows, cols))
    if info.type_name in FLOAT_TABLE_TYPES:
        # Converters write BitNet projections as floats already holding {-s, 0, +s}, Ternary-Bonsai's F16 files
        # ternary values times group scales; latent weights get the absmean rule where that is allowed.
        table = FloatTable(info.type_name, g.tensor_data(name), rows, cols)
        try:
            return ternary_from_floats(table, _absmean_allowed(g))
        except NotTernaryError as exc:
            raise ModelLoadError(
                g.path,
                f"tensor '{name}' {exc}; a {g.architecture} file must hold ternary weights (metadata"
                f" '{TERNARIZE_KEY}' = \"absmean\" asks for BitNet's absmean rule instead)",
            ) from exc
        except ValueError as exc:
            raise ModelLoadError(g.path, f"tensor '{name}': {exc}") from exc
    raise ModelLoadError(
        g.path,
        f"tensor '{name}' has type {info.type_name}, which is not ternary"
        f" (supported: {', '.join(TERNARY_FORMATS + FLOAT_TABLE_TYPES)})",
    )


def _extra_scale(g: GGUFFile, name: str) -> float:
    info = g.tensors.get(name)
    if info is None:
        return 1.0
    if info.n_elements != 1 or info.type_name not in FLOAT_TABLE_TYPES:
        raise ModelLoadError(g.path, f"tensor '{name}' must hold a single float")
    value = float(FloatTable(info.type_name, g.tensor_data(name), 1, 1).rows_f32(0, 1)[0, 0])
    if not np.isfinite(value):
        raise ModelLoadError(g.path, f"tensor '{name}' is not finite")
    return value


def load_gguf(path: str | Path) -> tuple[ModelWeights, GGUFFile]:
    g = GGUFFile(path)
    arch = g.architecture
    if arch not in ARCHITECTURES:
        raise ModelLoadError(g.path, f"unsupported architecture {arch!r} (supported: {', '.join(ARCHITECTURES)})")
    cfg = gguf_config(g)
    layers = []
    for i in range(cfg.n_layer):
        layer = LayerWeights()
        for norm, size in cfg.norm_sizes().items():
            layer.norms[norm] = _vector(g, f"blk.{i}.{norm}.weight", size)
        for lin, (rows, cols) in cfg.linear_shapes().items():
            t = _linear(g, f"blk.{i}.{lin}.weight", rows, cols)
            t.scale *= _extra_scale(g, f"blk.{i}.{lin}.scale")
            layer.linears[lin] = t
        layers.append(layer)
    output = None if cfg.tied_embeddings else _table(g, "output.weight", cfg.vocab, cfg.n_embd)
    token_embd = _table(g, "token_embd.weight", cfg.vocab, cfg.n_embd)
    strict = arch in STRICT_TERNARY_ARCHS
    head_name = "token_embd.weight" if output is None else "output.weight"
    weights = ModelWeights(
        config=cfg,
        token_embd=token_embd,
        output_norm=_vector(g, "output_norm.weight", cfg.n_embd),
        layers=layers,
        output=output,
        output_ternary=_ternary_head(g, head_name, token_embd if output is None else output, strict),
        traits=ModelTraits.from_gguf_metadata(g.metadata),
    )
    return weights, g
