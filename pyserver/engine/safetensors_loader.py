"""Hugging Face checkpoint directories (config.json + *.safetensors + tokenizer.json) -> `ModelWeights`.

Two kinds of BitNet-style checkpoints:
- latent: float projections, ternarized here with the absmean rule (1bitLLM bitnet_b1_58-*);
- packed: `quantization_config.quant_method == "bitnet"` (BitNet b1.58 2B4T, Falcon3-*-1.58bit): uint8 tensors of
  four 2-bit codes, row r = i * (rows/4) + p stored in byte row p at bits 2i, and a `weight_scale` that divides the
  output (transformers' BitLinear computes y = (x_q . w) / (x_scale * weight_scale)).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.engine.config import ModelConfig
from pyserver.engine.errors import ModelLoadError, short_repr
from pyserver.engine.gguf_file import open_model_file
from pyserver.engine.safetensors_file import SafetensorsFile
from pyserver.engine.tokenizer import Tokenizer, load_tokenizer_config
from pyserver.engine.weights import (
    FloatTable,
    LayerWeights,
    ModelWeights,
    NotTernaryError,
    TernaryTensor,
    pack_groups,
    pack_ternary,
    ternary_from_floats,
)

HF_LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
HF_NORMS = {
    "attn_norm": ("input_layernorm",),
    "ffn_norm": ("post_attention_layernorm",),
    "attn_sub_norm": ("self_attn.attn_sub_norm", "self_attn.inner_attn_ln"),
    "ffn_sub_norm": ("mlp.ffn_sub_norm", "mlp.ffn_layernorm"),
    "attn_q_norm": ("self_attn.q_norm",),  # Qwen3ForCausalLM's per-head norms
    "attn_k_norm": ("self_attn.k_norm",),
}
# Qwen3 checkpoints (Ternary-Bonsai's `-unpacked`: BF16 values ternary times group scales) must hold ternary
# projections: inexact floats are refused unless config.json asks for the absmean rule with this key.
TERNARIZE_KEY = "ryzanstein_ternarize"
FLOAT_DTYPES = ("F32", "F16", "BF16")
MAX_COUNT = 1 << 31  # any dimension or count in config.json (the native engine takes 64-bit sizes; none is near)
MAX_CONFIG_BYTES = 16 << 20
ACTIVATIONS = {"silu": "silu", "swish": "silu", "relu2": "relu2", "squared_relu": "relu2"}


def unpack_hf_bitnet(packed: np.ndarray, rows: int) -> np.ndarray:
    """uint8 [ceil(rows/4), cols] -> int8 codes in {-1, 0, 1} [rows, cols]."""
    parts = [((packed >> (2 * i)) & 3) for i in range(4)]
    codes = np.concatenate(parts, axis=0)[:rows].astype(np.int8) - 1
    if (codes > 1).any():
        raise ValueError("packed weights hold the unused code 3")
    return codes


class CheckpointTensors:
    """Every tensor of the checkpoint's shards, by name (each shard's header checked as it is opened)."""

    def __init__(self, directory: Path) -> None:
        self.files = [SafetensorsFile(p) for p in sorted(directory.glob("*.safetensors"))]
        if not self.files:
            raise ModelLoadError(directory, "no *.safetensors files in the directory")
        self.where: dict[str, SafetensorsFile] = {}
        for f in self.files:
            for name in f.entries:
                if name in self.where:
                    raise ModelLoadError(f.path, f"tensor '{name}' is also in {self.where[name].path.name}")
                self.where[name] = f
        self.directory = directory

    def get(self, name: str) -> SafetensorsFile:
        f = self.where.get(name)
        if f is None:
            raise ModelLoadError(self.directory, f"missing tensor '{name}'")
        return f

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def vector(self, name: str, length: int) -> np.ndarray:
        """A norm's weights as float32 [length]."""
        f = self.get(name)
        n = math.prod(f.shape(name))
        if f.dtype(name) not in FLOAT_DTYPES or n != length:
            raise ModelLoadError(f.path, f"tensor '{name}' has {n} values, expected {length} ({f.dtype(name)})")
        return f.float32(name).reshape(-1)

    def scalar(self, name: str) -> float:
        """A single float (a packed projection's weight_scale)."""
        f = self.get(name)
        if f.dtype(name) not in FLOAT_DTYPES or math.prod(f.shape(name)) != 1:
            raise ModelLoadError(
                f.path, f"tensor '{name}' must hold one float, is {f.dtype(name)} {list(f.shape(name))}"
            )
        return float(f.float32(name).reshape(-1)[0])

    def table_rows(self, name: str) -> int:
        """The rows of a 2-D table (the embedding's are the vocabulary), checked before the config is built."""
        f = self.get(name)
        shape = f.shape(name)
        if f.dtype(name) not in FLOAT_DTYPES or len(shape) != 2 or 0 in shape:
            raise ModelLoadError(
                f.path, f"tensor '{name}' must be a non-empty 2-D F32/F16/BF16 table, is {f.dtype(name)} {list(shape)}"
            )
        return shape[0]


# ---- config.json: every field this engine reads, checked ---------------------------------------------------------


def _positive_int(cfg: dict[str, Any], key: str, where: Path, default: int | None = None) -> int:
    """A positive integer field; absent or null gives the default, where there is one."""
    v = cfg.get(key)
    if v is None and default is not None:
        return default
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= MAX_COUNT:
        raise ModelLoadError(where, f"'{key}' must be a positive integer up to {MAX_COUNT}, got {short_repr(v)}")
    return v


def _positive_float(cfg: dict[str, Any], key: str, where: Path, default: float) -> float:
    """A positive finite number; absent or null gives the default."""
    v = cfg.get(key)
    if v is None:
        return default
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
        raise ModelLoadError(where, f"'{key}' must be a positive finite number, got {short_repr(v)}")
    return float(v)


_KINDS: dict[type, str] = {str: "a string", bool: "a boolean", dict: "an object"}


def _optional(cfg: dict[str, Any], key: str, kind: type, where: Path) -> Any:
    """A field of the given JSON type, or None when absent or null."""
    v = cfg.get(key)
    if v is not None and not isinstance(v, kind):
        raise ModelLoadError(where, f"'{key}' must be {_KINDS[kind]}, got {short_repr(v)}")
    return v


def hf_config(
    cfg: dict[str, Any], where: Path, vocab: int | None = None, sub_norms: bool = True, tied: bool | None = None
) -> ModelConfig:
    """A Hugging Face config.json as a ModelConfig, every field it reads checked (a ModelLoadError names the
    field). vocab (the embedding table's rows) defaults to `vocab_size`; sub_norms says whether the checkpoint has
    BitNet's sub-norms (its tensor names tell)."""
    if not isinstance(cfg, dict):
        raise ModelLoadError(where, f"config.json must be a JSON object, is {type(cfg).__name__}")
    act_name = _optional(cfg, "hidden_act", str, where) or "silu"
    if act_name not in ACTIVATIONS:
        raise ModelLoadError(where, f"unsupported hidden_act {short_repr(act_name)}")
    act = ACTIVATIONS[act_name]
    arch = ("bitnet-b1.58" if act == "relu2" else "bitnet") if sub_norms else "llama"
    if cfg.get("model_type") == "qwen3":
        arch = "qwen3"
    n_embd, n_head = _positive_int(cfg, "hidden_size", where), _positive_int(cfg, "num_attention_heads", where)
    n_head_kv = _positive_int(cfg, "num_key_value_heads", where, n_head)
    if cfg.get("head_dim") is None and n_embd % n_head:
        raise ModelLoadError(where, f"'num_attention_heads' {n_head} must divide 'hidden_size' {n_embd}")
    if n_head % n_head_kv:
        raise ModelLoadError(where, f"'num_key_value_heads' {n_head_kv} must divide 'num_attention_heads' {n_head}")
    head_dim = _positive_int(cfg, "head_dim", where, n_embd // n_head)
    if head_dim % 2:
        raise ModelLoadError(where, f"'head_dim' {head_dim} must be even (rotary embedding pairs)")
    tie = _optional(cfg, "tie_word_embeddings", bool, where)
    return ModelConfig.for_arch(  # qwen3: its q/k norms and activation blocks from the architecture table
        arch,
        n_embd=n_embd,
        n_ff=_positive_int(cfg, "intermediate_size", where),
        n_layer=_positive_int(cfg, "num_hidden_layers", where),
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        vocab=vocab or _positive_int(cfg, "vocab_size", where),
        context_length=_positive_int(cfg, "max_position_embeddings", where, 4096),
        rope_base=_positive_float(cfg, "rope_theta", where, 10000.0),
        norm_eps=_positive_float(cfg, "rms_norm_eps", where, 1e-5),
        act=act,
        sub_norms=sub_norms,
        rope_neox=True,  # HF rotate_half is the NEOX pairing
        tied_embeddings=bool(tie) if tied is None else tied,
    )


def _table(t: CheckpointTensors, name: str, config: ModelConfig) -> FloatTable:
    t.table_rows(name)
    f = t.get(name)
    dtype, (rows, cols) = f.dtype(name), f.shape(name)
    if cols != config.n_embd:
        raise ModelLoadError(f.path, f"tensor '{name}' has {cols} columns, hidden_size is {config.n_embd}")
    if rows != config.vocab:
        raise ModelLoadError(f.path, f"tensor '{name}' has {rows} rows, the vocabulary {config.vocab}")
    return FloatTable(dtype, f.array(name).reshape(-1).view(np.uint8), rows, cols)


def _linear(t: CheckpointTensors, name: str, rows: int, cols: int, packed: bool, absmean: bool = True) -> TernaryTensor:
    f = t.get(f"{name}.weight")
    shape, dtype = f.shape(f"{name}.weight"), f.dtype(f"{name}.weight")
    if packed and dtype == "U8":
        if shape != ((rows + 3) // 4, cols):
            raise ModelLoadError(
                f.path,
                f"tensor '{name}.weight' has shape {list(shape)}, a packed"
                f" [{rows}, {cols}] needs [{(rows + 3) // 4}, {cols}]",
            )
        try:
            codes = unpack_hf_bitnet(f.array(f"{name}.weight"), rows)
        except ValueError as exc:
            raise ModelLoadError(f.path, f"tensor '{name}.weight': {exc}") from exc
        ws = t.scalar(f"{name}.weight_scale") if f"{name}.weight_scale" in t else 1.0
        if not np.isfinite(ws) or ws == 0.0:
            raise ModelLoadError(f.path, f"tensor '{name}.weight_scale' is zero or not finite")
        return _pack(f.path, name, codes, 1.0 / ws)
    if dtype not in FLOAT_DTYPES:
        raise ModelLoadError(f.path, f"tensor '{name}.weight' has dtype {dtype}; expected floats or packed uint8")
    if shape != (rows, cols):
        raise ModelLoadError(f.path, f"tensor '{name}.weight' has shape {list(shape)}, expected [{rows}, {cols}]")
    try:
        return ternary_from_floats(FloatTable("F32", f.float32(f"{name}.weight"), rows, cols), absmean)
    except NotTernaryError as exc:
        raise ModelLoadError(
            f.path,
            f"tensor '{name}.weight' {exc}; a Qwen3 checkpoint must hold ternary weights (config.json"
            f" '{TERNARIZE_KEY}': \"absmean\" asks for BitNet's absmean rule instead)",
        ) from exc
    except ValueError as exc:
        raise ModelLoadError(f.path, f"tensor '{name}': {exc}") from exc


def _pack(path: Path, name: str, codes: np.ndarray, scale: float) -> TernaryTensor:
    try:
        return pack_ternary(codes, scale)
    except ValueError as exc:
        raise ModelLoadError(path, f"tensor '{name}': {exc}") from exc


def read_json_file(path: Path, what: str) -> Any:
    """A small JSON file of the checkpoint (config.json). Regular files only: a FIFO would block the read."""
    if not path.exists():
        raise ModelLoadError(path, f"missing {what}")
    f, identity = open_model_file(path)
    with f:
        if identity.size > MAX_CONFIG_BYTES:
            raise ModelLoadError(path, f"{what} is implausibly large ({identity.size} bytes)")
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ModelLoadError(path, f"unreadable {what}: {exc}") from exc


def _layer(t: CheckpointTensors, config: ModelConfig, i: int, packed: bool, absmean: bool) -> LayerWeights:
    p = f"model.layers.{i}."
    layer = LayerWeights()
    sizes = config.norm_sizes()
    for ours, candidates in HF_NORMS.items():
        if ours not in sizes:
            continue
        name = next((f"{p}{c}.weight" for c in candidates if f"{p}{c}.weight" in t), f"{p}{candidates[0]}.weight")
        layer.norms[ours] = t.vector(name, sizes[ours])
    for ours, (rows, cols) in config.linear_shapes().items():
        layer.linears[ours] = _linear(t, p + HF_LINEARS[ours], rows, cols, packed, absmean)
    return layer


def load_safetensors_dir(directory: Path) -> tuple[ModelWeights, Tokenizer]:
    cfg_path = directory / "config.json"
    cfg = read_json_file(cfg_path, "config.json")
    if not isinstance(cfg, dict):
        raise ModelLoadError(cfg_path, f"config.json must be a JSON object, is {type(cfg).__name__}")
    qcfg = _optional(cfg, "quantization_config", dict, cfg_path) or {}
    packed = qcfg.get("quant_method") == "bitnet"
    if packed and qcfg.get("use_rms_norm"):
        raise ModelLoadError(cfg_path, "BitLinear with its own RMSNorm (use_rms_norm) is not supported")
    t = CheckpointTensors(directory)
    vocab = t.table_rows("model.embed_tokens.weight")
    if cfg.get("vocab_size") is not None and _positive_int(cfg, "vocab_size", cfg_path) != vocab:
        raise ModelLoadError(
            cfg_path, f"'vocab_size' is {cfg['vocab_size']} but 'model.embed_tokens.weight' has {vocab} rows"
        )
    tie = _optional(cfg, "tie_word_embeddings", bool, cfg_path)
    config = hf_config(
        cfg,
        cfg_path,
        vocab=vocab,
        sub_norms=any(f"model.layers.0.{n}.weight" in t for n in HF_NORMS["attn_sub_norm"]),
        tied=("lm_head.weight" not in t) if tie is None else tie,
    )
    token_embd = _table(t, "model.embed_tokens.weight", config)  # checked before any layer is read
    output = None if config.tied_embeddings else _table(t, "lm_head.weight", config)
    strict = config.arch == "qwen3"
    ternarize = _optional(cfg, TERNARIZE_KEY, str, cfg_path)
    if ternarize not in (None, "absmean"):
        raise ModelLoadError(cfg_path, f"'{TERNARIZE_KEY}' must be \"absmean\", got {short_repr(ternarize)}")
    absmean = not strict or ternarize == "absmean"
    weights = ModelWeights(
        config=config,
        token_embd=token_embd,
        output_norm=t.vector("model.norm.weight", config.n_embd),
        layers=[_layer(t, config, i, packed, absmean) for i in range(config.n_layer)],
        output=output,
        # Ternary-Bonsai's head is ternary per group too: run it on the projection kernels.
        output_ternary=pack_groups(token_embd if output is None else output) if strict else None,
    )
    tok_path = directory / "tokenizer.json"
    if not tok_path.exists():
        raise ModelLoadError(directory, "missing tokenizer.json")
    open_model_file(tok_path)[0].close()  # a regular file (the tokenizers library would block on a FIFO)
    return weights, Tokenizer.from_tokenizer_json(tok_path, load_tokenizer_config(directory))
