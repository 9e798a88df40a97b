"""Hugging Face checkpoint directories (config.json + *.safetensors + tokenizer.json) -> `ModelWeights`.

Two kinds of BitNet-style checkpoints:
- latent: float projections, ternarized here with the absmean rule (1bitLLM bitnet_b1_58-*);
- packed: `quantization_config.quant_method == "bitnet"` (BitNet b1.58 2B4T, Falcon3-*-1.58bit): uint8 tensors of
  four 2-bit codes, row r = i * (rows/4) + p stored in byte row p at bits 2i, and a `weight_scale` that divides the
  output (transformers' BitLinear computes y = (x_q . w) / (x_scale * weight_scale)).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.engine.config import ModelConfig
from pyserver.engine.errors import ModelLoadError
from pyserver.engine.safetensors_file import SafetensorsFile
from pyserver.engine.tokenizer import Tokenizer, load_tokenizer_config
from pyserver.engine.weights import (
    FloatTable,
    LayerWeights,
    ModelWeights,
    TernaryTensor,
    pack_ternary,
    ternarize_absmean,
    ternarize_exact,
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
}
ACTIVATIONS = {"silu": "silu", "swish": "silu", "relu2": "relu2", "squared_relu": "relu2"}


def unpack_hf_bitnet(packed: np.ndarray, rows: int) -> np.ndarray:
    """uint8 [ceil(rows/4), cols] -> int8 codes in {-1, 0, 1} [rows, cols]."""
    parts = [((packed >> (2 * i)) & 3) for i in range(4)]
    codes = np.concatenate(parts, axis=0)[:rows].astype(np.int8) - 1
    if (codes > 1).any():
        raise ValueError("packed weights hold the unused code 3")
    return codes


class _Tensors:
    """Every tensor of the checkpoint's shards, by name."""

    def __init__(self, directory: Path) -> None:
        self.files = [SafetensorsFile(p) for p in sorted(directory.glob("*.safetensors"))]
        if not self.files:
            raise ModelLoadError(directory, "no *.safetensors files in the directory")
        self.where = {name: f for f in self.files for name in f.entries}
        self.directory = directory

    def get(self, name: str) -> SafetensorsFile:
        f = self.where.get(name)
        if f is None:
            raise ModelLoadError(self.directory, f"missing tensor '{name}'")
        return f

    def __contains__(self, name: str) -> bool:
        return name in self.where


def hf_config(
    cfg: dict[str, Any], where: Path, vocab: int | None = None, sub_norms: bool = True, tied: bool | None = None
) -> ModelConfig:
    """A Hugging Face config.json as a ModelConfig. vocab (the embedding table's rows) defaults to `vocab_size`;
    sub_norms says whether the checkpoint has BitNet's sub-norms (its tensor names tell)."""

    def need(key: str) -> int:
        v = cfg.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ModelLoadError(where, f"'{key}' must be a positive integer, got {v!r}")
        return v

    act_name = str(cfg.get("hidden_act", "silu"))
    if act_name not in ACTIVATIONS:
        raise ModelLoadError(where, f"unsupported hidden_act {act_name!r}")
    act = ACTIVATIONS[act_name]
    arch = ("bitnet-b1.58" if act == "relu2" else "bitnet") if sub_norms else "llama"
    n_embd, n_head = need("hidden_size"), need("num_attention_heads")
    return ModelConfig(
        arch=arch,
        n_embd=n_embd,
        n_ff=need("intermediate_size"),
        n_layer=need("num_hidden_layers"),
        n_head=n_head,
        n_head_kv=int(cfg.get("num_key_value_heads") or n_head),
        head_dim=int(cfg.get("head_dim") or n_embd // n_head),
        vocab=vocab or need("vocab_size"),
        context_length=int(cfg.get("max_position_embeddings") or 4096),
        rope_base=float(cfg.get("rope_theta", 10000.0)),
        norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
        act=act,
        sub_norms=sub_norms,
        rope_neox=True,  # HF rotate_half is the NEOX pairing
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)) if tied is None else tied,
    )


def _table(t: _Tensors, name: str) -> FloatTable:
    f = t.get(name)
    dtype, shape = f.dtype(name), f.shape(name)
    if dtype not in ("F32", "F16", "BF16") or len(shape) != 2:
        raise ModelLoadError(f.path, f"tensor '{name}' must be a 2-D F32/F16/BF16 table, is {dtype} {list(shape)}")
    return FloatTable(dtype, f.array(name).reshape(-1).view(np.uint8), shape[0], shape[1])


def _linear(t: _Tensors, name: str, rows: int, cols: int, packed: bool) -> TernaryTensor:
    f = t.get(f"{name}.weight")
    arr, dtype = f.array(f"{name}.weight"), f.dtype(f"{name}.weight")
    if packed and dtype == "U8":
        if arr.shape != ((rows + 3) // 4, cols):
            raise ModelLoadError(
                f.path,
                f"tensor '{name}.weight' has shape {list(arr.shape)}, a packed"
                f" [{rows}, {cols}] needs [{(rows + 3) // 4}, {cols}]",
            )
        try:
            codes = unpack_hf_bitnet(arr, rows)
        except ValueError as exc:
            raise ModelLoadError(f.path, f"tensor '{name}.weight': {exc}") from exc
        ws = (
            float(t.get(f"{name}.weight_scale").float32(f"{name}.weight_scale").reshape(-1)[0])
            if f"{name}.weight_scale" in t
            else 1.0
        )
        if not np.isfinite(ws) or ws == 0.0:
            raise ModelLoadError(f.path, f"tensor '{name}.weight_scale' is zero or not finite")
        return _pack(f.path, name, codes, 1.0 / ws)
    if dtype not in ("F32", "F16", "BF16"):
        raise ModelLoadError(f.path, f"tensor '{name}.weight' has dtype {dtype}; expected floats or packed uint8")
    if arr.shape != (rows, cols):
        raise ModelLoadError(f.path, f"tensor '{name}.weight' has shape {list(arr.shape)}, expected [{rows}, {cols}]")
    w = f.float32(f"{name}.weight")
    codes, scale = ternarize_exact(w) or ternarize_absmean(w)
    return _pack(f.path, name, codes, scale)


def _pack(path: Path, name: str, codes: np.ndarray, scale: float) -> TernaryTensor:
    try:
        return pack_ternary(codes, scale)
    except ValueError as exc:
        raise ModelLoadError(path, f"tensor '{name}': {exc}") from exc


def load_safetensors_dir(directory: Path) -> tuple[ModelWeights, Tokenizer]:
    cfg_path = directory / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(cfg_path, "missing config.json") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(cfg_path, f"unreadable config.json: {exc}") from exc
    qcfg = cfg.get("quantization_config") or {}
    packed = qcfg.get("quant_method") == "bitnet"
    if packed and qcfg.get("use_rms_norm"):
        raise ModelLoadError(cfg_path, "BitLinear with its own RMSNorm (use_rms_norm) is not supported")
    t = _Tensors(directory)
    config = hf_config(
        cfg,
        cfg_path,
        vocab=t.get("model.embed_tokens.weight").shape("model.embed_tokens.weight")[0],
        sub_norms=any(f"model.layers.0.{n}.weight" in t for n in HF_NORMS["attn_sub_norm"]),
        tied=bool(cfg.get("tie_word_embeddings", "lm_head.weight" not in t)),
    )
    layers = []
    for i in range(config.n_layer):
        p = f"model.layers.{i}."
        layer = LayerWeights()
        for ours, candidates in HF_NORMS.items():
            if ours.endswith("sub_norm") and not config.sub_norms:
                continue
            name = next((f"{p}{c}.weight" for c in candidates if f"{p}{c}.weight" in t), f"{p}{candidates[0]}.weight")
            layer.norms[ours] = t.get(name).float32(name).reshape(-1)
        for ours, (rows, cols) in config.linear_shapes().items():
            layer.linears[ours] = _linear(t, p + HF_LINEARS[ours], rows, cols, packed)
        layers.append(layer)
    weights = ModelWeights(
        config=config,
        token_embd=_table(t, "model.embed_tokens.weight"),
        output_norm=t.get("model.norm.weight").float32("model.norm.weight").reshape(-1),
        layers=layers,
        output=None if config.tied_embeddings else _table(t, "lm_head.weight"),
        keep_alive=t.files,
    )
    tok_path = directory / "tokenizer.json"
    if not tok_path.is_file():
        raise ModelLoadError(directory, "missing tokenizer.json")
    return weights, Tokenizer.from_tokenizer_json(tok_path, load_tokenizer_config(directory))
