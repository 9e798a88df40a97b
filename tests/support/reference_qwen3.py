"""A plain numpy Qwen3 forward pass in float64, from a GGUF file's own values: the tests' independent reference for
the engine (and for llama.cpp) on Qwen3 files.

The file's tensors are decoded here, not by the engine: F16 / F32 as numpy views, TQ2_0 by the `gguf` package's
dequantizer, Q2_0 (type 42, blocks of 64 or PrismML's 128) by `decode_q2_0` below, written from ggml-common.h's
`block_q2_0`. Activations are not quantized: this is the model the file describes, the target both engines
approximate. Qwen3 (llama.cpp `src/models/qwen3.cpp`): RMSNorm of each head's q and k before NEOX RoPE, GQA, SwiGLU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize

from pyserver.engine.config import ModelConfig
from pyserver.engine.gguf_file import GGUFFile


def decode_q2_0(raw: np.ndarray, rows: int, cols: int, block: int) -> np.ndarray:
    """Q2_0 bytes -> float32 [rows, cols]: per block an f16 d then block/4 bytes; weight j in byte j // 4 at bits
    2 * (j % 4); value (code - 1) * d."""
    b = raw.reshape(rows * cols // block, 2 + block // 4)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    qs = b[:, 2:]
    codes = (qs[:, :, None] >> (2 * np.arange(4, dtype=np.uint8))[None, None, :]) & 3  # [n, block/4, 4]
    return ((codes.reshape(-1, block).astype(np.float32) - 1) * d).reshape(rows, cols)


def tensor_values(g: GGUFFile, name: str) -> np.ndarray:
    info = g.tensors[name]
    raw = g.tensor_data(name)
    shape = info.shape
    if info.type_name == "F32":
        return raw.view(np.float32).reshape(shape).astype(np.float64)
    if info.type_name == "F16":
        return raw.view(np.float16).reshape(shape).astype(np.float64)
    if info.type_name in ("Q2_0", "Q2_0_128"):
        return decode_q2_0(raw, shape[0], shape[1], 64 if info.type_name == "Q2_0" else 128).astype(np.float64)
    out = dequantize(raw.reshape(shape[0], -1), GGMLQuantizationType[info.type_name])
    return np.asarray(out, dtype=np.float64).reshape(shape)


@dataclass
class Qwen3Ref:
    cfg: ModelConfig
    token_embd: np.ndarray
    output_norm: np.ndarray
    output: np.ndarray  # the head: token_embd when tied
    layers: list[dict[str, np.ndarray]] = field(default_factory=list)


def load_reference(path: Path, cfg: ModelConfig) -> Qwen3Ref:
    g = GGUFFile(path)
    embd = tensor_values(g, "token_embd.weight")
    head = tensor_values(g, "output.weight") if "output.weight" in g.tensors else embd
    names = (*cfg.linear_shapes(), *cfg.norm_sizes())
    layers = [{n: tensor_values(g, f"blk.{i}.{n}.weight") for n in names} for i in range(cfg.n_layer)]
    return Qwen3Ref(cfg, embd, tensor_values(g, "output_norm.weight"), head, layers)


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def rope_neox(x: np.ndarray, base: float) -> np.ndarray:
    """x [n, heads, head_dim], position p = row index: rotates the pairs (i, i + head_dim/2)."""
    n, _, hd = x.shape
    half = hd // 2
    ang = np.arange(n, dtype=np.float64)[:, None] * base ** (-np.arange(half) * 2.0 / hd)[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def forward(m: Qwen3Ref, tokens: list[int]) -> np.ndarray:
    """Logits [len(tokens), vocab] of one sequence from position 0."""
    cfg, n, hd = m.cfg, len(tokens), m.cfg.head_dim
    x = m.token_embd[np.asarray(tokens)]
    mask = np.triu(np.full((n, n), -np.inf), k=1)
    for L in m.layers:
        h = rms_norm(x, L["attn_norm"], cfg.norm_eps)
        q = rms_norm((h @ L["attn_q"].T).reshape(n, cfg.n_head, hd), L["attn_q_norm"], cfg.norm_eps)
        k = rms_norm((h @ L["attn_k"].T).reshape(n, cfg.n_head_kv, hd), L["attn_k_norm"], cfg.norm_eps)
        v = (h @ L["attn_v"].T).reshape(n, cfg.n_head_kv, hd)
        q, k = rope_neox(q, cfg.rope_base), rope_neox(k, cfg.rope_base)
        att = np.empty((n, cfg.n_head, hd))
        for head in range(cfg.n_head):
            kv = head // (cfg.n_head // cfg.n_head_kv)
            s = q[:, head] @ k[:, kv].T / np.sqrt(hd) + mask
            p = np.exp(s - s.max(axis=1, keepdims=True))
            att[:, head] = (p / p.sum(axis=1, keepdims=True)) @ v[:, kv]
        x = x + att.reshape(n, cfg.q_dim) @ L["attn_output"].T
        h = rms_norm(x, L["ffn_norm"], cfg.norm_eps)
        gate, up = h @ L["ffn_gate"].T, h @ L["ffn_up"].T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ L["ffn_down"].T
    return rms_norm(x, m.output_norm, cfg.norm_eps) @ m.output.T
