"""A plain numpy forward pass, read top to bottom: the tests' independent reference for the engine.

Weights come as dense float matrices (ternary codes times their scales, any extra per-projection scale folded in), so
the same reference serves every file format. Arithmetic is float64; activations are quantized per token to int8
exactly as BitNet does before each ternary projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyserver.engine.config import ModelConfig
from tests.support.reference_kernels import quantize_activations


@dataclass
class RefWeights:
    token_embd: np.ndarray  # [vocab, n_embd]
    output_norm: np.ndarray
    layers: list[dict[str, np.ndarray]] = field(default_factory=list)
    output: np.ndarray | None = None  # [vocab, n_embd]; None when tied to token_embd


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def ternary_linear(w: np.ndarray, x: np.ndarray, quantize: bool) -> np.ndarray:
    if not quantize:
        return x @ w.T.astype(np.float64)
    q, scale = quantize_activations(x.astype(np.float32))
    return (q.astype(np.float64) @ w.T.astype(np.float64)) / scale.astype(np.float64)[:, None]


def rope_neox(x: np.ndarray, positions: np.ndarray, base: float, rope_dim: int) -> np.ndarray:
    """x: [n, heads, head_dim]. Rotates the pairs (i, i + rope_dim/2) for i < rope_dim/2."""
    half = rope_dim // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / rope_dim)
    ang = positions.astype(np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    out = x.copy()
    a, b = x[..., :half], x[..., half:rope_dim]
    out[..., :half] = a * cos - b * sin
    out[..., half:rope_dim] = a * sin + b * cos
    return out


def rope_interleaved(x: np.ndarray, positions: np.ndarray, base: float, rope_dim: int) -> np.ndarray:
    """Rotates the adjacent pairs (2i, 2i+1) for i < rope_dim/2, written as complex multiplication."""
    half = rope_dim // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / rope_dim)
    rot = np.exp(1j * positions.astype(np.float64)[:, None] * inv[None, :])[:, None, :]
    z = (x[..., 0:rope_dim:2] + 1j * x[..., 1:rope_dim:2]) * rot
    out = x.copy()
    out[..., 0:rope_dim:2], out[..., 1:rope_dim:2] = z.real, z.imag
    return out


def forward(cfg: ModelConfig, w: RefWeights, tokens: list[int], quantize: bool = True) -> np.ndarray:
    """Logits [len(tokens), vocab] for one sequence starting at position 0."""
    n, hd = len(tokens), cfg.head_dim
    rope_dim = cfg.rope_dim
    pos = np.arange(n)
    x = w.token_embd[np.asarray(tokens)].astype(np.float64)
    group = cfg.n_head // cfg.n_head_kv
    mask = np.triu(np.full((n, n), -np.inf), k=1)
    for layer in w.layers:
        h = rms_norm(x, layer["attn_norm"], cfg.norm_eps)
        q = ternary_linear(layer["attn_q"], h, quantize).reshape(n, cfg.n_head, hd)
        k = ternary_linear(layer["attn_k"], h, quantize).reshape(n, cfg.n_head_kv, hd)
        v = ternary_linear(layer["attn_v"], h, quantize).reshape(n, cfg.n_head_kv, hd)
        rope = rope_neox if cfg.rope_neox else rope_interleaved
        q = rope(q, pos, cfg.rope_base, rope_dim)
        k = rope(k, pos, cfg.rope_base, rope_dim)
        att = np.empty((n, cfg.n_head, hd))
        for head in range(cfg.n_head):
            kv = head // group
            s = q[:, head, :] @ k[:, kv, :].T / np.sqrt(hd) + mask
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            att[:, head, :] = p @ v[:, kv, :]
        a = att.reshape(n, cfg.n_embd)
        if cfg.sub_norms:
            a = rms_norm(a, layer["attn_sub_norm"], cfg.norm_eps)
        x = x + ternary_linear(layer["attn_output"], a, quantize)
        h = rms_norm(x, layer["ffn_norm"], cfg.norm_eps)
        gate = ternary_linear(layer["ffn_gate"], h, quantize)
        up = ternary_linear(layer["ffn_up"], h, quantize)
        if cfg.act == "relu2":
            f = np.maximum(gate, 0.0) ** 2 * up
        else:
            f = gate / (1.0 + np.exp(-gate)) * up
        if cfg.sub_norms:
            f = rms_norm(f, layer["ffn_sub_norm"], cfg.norm_eps)
        x = x + ternary_linear(layer["ffn_down"], f, quantize)
    x = rms_norm(x, w.output_norm, cfg.norm_eps)
    head = w.token_embd if w.output is None else w.output
    return x @ head.T.astype(np.float64)
