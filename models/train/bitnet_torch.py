"""The shipped model in PyTorch: llama.cpp's `bitnet` architecture (tied embedding, BitNet sub-norms, SiLU-gated
FFN, NEOX RoPE) with BitLinear projections: absmean-ternarized weights and per-token int8 activations in the forward
pass, straight-through gradients. Training only; the runtime never imports torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pyserver.engine.config import ModelConfig


@dataclass
class BitnetConfig:
    vocab: int = 4096
    n_embd: int = 256
    n_ff: int = 768
    n_layer: int = 6
    n_head: int = 4
    n_head_kv: int = 4
    context: int = 256
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def model_config(self) -> ModelConfig:
        """The shape as the engine and its GGUF writer know it (llama.cpp's `bitnet`)."""
        return ModelConfig.for_arch(
            "bitnet",
            n_embd=self.n_embd,
            n_ff=self.n_ff,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_head_kv=self.n_head_kv,
            vocab=self.vocab,
            context_length=self.context,
            rope_base=self.rope_base,
            norm_eps=self.norm_eps,
        )

    @classmethod
    def of(cls, cfg: ModelConfig) -> BitnetConfig:
        return cls(
            vocab=cfg.vocab,
            n_embd=cfg.n_embd,
            n_ff=cfg.n_ff,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_head_kv=cfg.n_head_kv,
            context=cfg.context_length,
            rope_base=cfg.rope_base,
            norm_eps=cfg.norm_eps,
        )


def ternarize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BitNet b1.58 absmean rule: codes in {-1, 0, 1} and the tensor scale."""
    scale = w.abs().mean().clamp(min=1e-5)
    return (w / scale).round().clamp(-1, 1), scale


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """Per-token absmax int8, returned dequantized (x_q / s) as the runtime computes it."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


class BitLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__(n_in, n_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes, scale = ternarize(self.weight)
        w = self.weight + (codes * scale - self.weight).detach()
        xq = x + (quantize_activations(x) - x).detach()
        return F.linear(xq, w)


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg: BitnetConfig, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [n, head_dim / 2] in float32, computed in float64 (as the engine's tables are)."""
    half = cfg.head_dim // 2
    inv = cfg.rope_base ** (-torch.arange(half, dtype=torch.float64) * 2.0 / cfg.head_dim)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, T, D]; NEOX pairs (i, i + D/2)."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, cfg: BitnetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        kvd = cfg.n_head_kv * cfg.head_dim
        self.attn_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn_q = BitLinear(cfg.n_embd, cfg.n_embd)
        self.attn_k = BitLinear(cfg.n_embd, kvd)
        self.attn_v = BitLinear(cfg.n_embd, kvd)
        self.attn_sub_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn_output = BitLinear(cfg.n_embd, cfg.n_embd)
        self.ffn_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.ffn_gate = BitLinear(cfg.n_embd, cfg.n_ff)
        self.ffn_up = BitLinear(cfg.n_embd, cfg.n_ff)
        self.ffn_sub_norm = RMSNorm(cfg.n_ff, cfg.norm_eps)
        self.ffn_down = BitLinear(cfg.n_ff, cfg.n_embd)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.attn_q(h).view(B, T, c.n_head, c.head_dim).transpose(1, 2)
        k = self.attn_k(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        v = self.attn_v(h).view(B, T, c.n_head_kv, c.head_dim).transpose(1, 2)
        # RoPE in float32, then back to the projections' dtype (bf16 under autocast) so q, k, v agree.
        q, k = apply_rope(q.float(), cos, sin).to(v.dtype), apply_rope(k.float(), cos, sin).to(v.dtype)
        if c.n_head_kv != c.n_head:
            rep = c.n_head // c.n_head_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, c.n_embd)
        x = x + self.attn_output(self.attn_sub_norm(a))
        h = self.ffn_norm(x)
        f = F.silu(self.ffn_gate(h)) * self.ffn_up(h)
        return x + self.ffn_down(self.ffn_sub_norm(f))


class BitnetLM(nn.Module):
    def __init__(self, cfg: BitnetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embd = nn.Embedding(cfg.vocab, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.output_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        cos, sin = rope_tables(cfg, cfg.context)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        nn.init.normal_(self.token_embd.weight, std=1.0 / math.sqrt(cfg.n_embd))
        for name, p in self.named_parameters():
            if name.endswith(("attn_output.weight", "ffn_down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))
            elif p.dim() == 2 and "token_embd" not in name:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        if T > self.rope_cos.shape[0]:
            cos, sin = (t.to(tokens.device) for t in rope_tables(self.cfg, T))
        else:
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = self.token_embd(tokens)
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return self.output_norm(x) @ self.token_embd.weight.T  # tied head
