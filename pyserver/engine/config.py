"""The shape of a model, independent of the file it came from: the one place that says which tensors a model has,
their shapes, and what they cost this engine (parameters, bytes read per token, memory).

Every loader, writer, builder, benchmark and the tier registry take their shapes from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

KV_BYTES = 4  # the engine's KV cache is f32
LINEAR_NAMES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")

# What each supported architecture computes. Everything else about a model comes from its file.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "bitnet": {"act": "silu", "sub_norms": True, "rope_neox": True},
    "bitnet-b1.58": {"act": "relu2", "sub_norms": True, "rope_neox": True},
    # llama.cpp's converter permutes Q/K rows of llama models for the interleaved rotation.
    "llama": {"act": "silu", "sub_norms": False, "rope_neox": False},
    # Qwen3 (Ternary-Bonsai): RMSNorm on each head's q and k before RoPE, NEOX rotation, SwiGLU, no sub-norms. Its
    # activations were never trained for one int8 scale per token and carry outlier channels 30-100x the rest, so
    # they are quantized per block of 32 (llama.cpp's q8_0 block), chosen by agreement with llama.cpp's F16 run. Each
    # block ends the kernels' integer run with float work, which made AVX2 decode of TQ2_0 files compute-bound (0.41
    # of the bandwidth on 1 Zen 3 thread), so those files (requantized per 256 already, and run by llama.cpp with
    # activations per 256) take blocks of act_block_max (Model: _act_block).
    "qwen3": {
        "act": "silu",
        "sub_norms": False,
        "rope_neox": True,
        "qk_norm": True,
        "act_block": 32,
        "act_block_max": 128,
    },
}


@dataclass(frozen=True)
class ModelConfig:
    arch: str  # the file's architecture name: "bitnet", "bitnet-b1.58", "llama"
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    vocab: int
    head_dim: int = 0  # 0: n_embd // n_head
    rope_dim: int = 0  # 0: head_dim
    context_length: int = 4096
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    act: str = "silu"  # FFN gate activation: "silu" or "relu2" (squared ReLU)
    sub_norms: bool = True  # BitNet's RMSNorm before attn_output and ffn_down
    rope_neox: bool = True  # rotate pairs (i, i + rope_dim/2); False: adjacent pairs, as llama GGUF files need
    tied_embeddings: bool = True  # the output head is the token embedding table
    qk_norm: bool = False  # Qwen3's per-head RMSNorm of q and k (attn_q_norm / attn_k_norm, head_dim weights)
    act_block: int = 0  # activation quantization: 0 one int8 scale per token (BitNet's rule), else per block of this
    # The longest block the model may raise act_block to, up to its weights' scale group (0: act_block as it is).
    act_block_max: int = 0

    def __post_init__(self) -> None:
        if not self.head_dim:
            object.__setattr__(self, "head_dim", self.n_embd // self.n_head)
        if not self.rope_dim:
            object.__setattr__(self, "rope_dim", self.head_dim)

    @classmethod
    def for_arch(cls, arch: str, **dims: Any) -> ModelConfig:
        """A config with the architecture's computation (activation, sub-norms, rotation) filled in; dims may
        override any of it. An unknown architecture gets llama's, so its shape can still be described."""
        return cls(arch=arch, **{**ARCHITECTURES.get(arch, ARCHITECTURES["llama"]), **dims})

    def with_(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)

    def native(self) -> dict[str, object]:
        """The dict the native `Model` constructor takes."""
        d = asdict(self)
        for key in ("arch", "context_length", "tied_embeddings", "act_block_max"):
            del d[key]
        return d

    # --- the tensors -------------------------------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.n_head * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_head_kv * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """Each layer's ternary projections, (rows, cols) = (outputs, inputs)."""
        d, q, kv, ff = self.n_embd, self.q_dim, self.kv_dim, self.n_ff
        return {
            "attn_q": (q, d),
            "attn_k": (kv, d),
            "attn_v": (kv, d),
            "attn_output": (d, q),
            "ffn_gate": (ff, d),
            "ffn_up": (ff, d),
            "ffn_down": (d, ff),
        }

    def norm_sizes(self) -> dict[str, int]:
        """Each layer's RMSNorm weights."""
        sizes = {"attn_norm": self.n_embd, "ffn_norm": self.n_embd}
        if self.sub_norms:
            sizes.update(attn_sub_norm=self.q_dim, ffn_sub_norm=self.n_ff)
        if self.qk_norm:
            sizes.update(attn_q_norm=self.head_dim, attn_k_norm=self.head_dim)
        return sizes

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of the model under its GGUF name, shape in numpy order (rows first)."""
        shapes: dict[str, tuple[int, ...]] = {
            "token_embd.weight": (self.vocab, self.n_embd),
            "output_norm.weight": (self.n_embd,),
        }
        if not self.tied_embeddings:
            shapes["output.weight"] = (self.vocab, self.n_embd)
        for i in range(self.n_layer):
            shapes.update({f"blk.{i}.{n}.weight": (size,) for n, size in self.norm_sizes().items()})
            shapes.update({f"blk.{i}.{n}.weight": rc for n, rc in self.linear_shapes().items()})
        return shapes

    # --- what it costs -----------------------------------------------------------------------------------------
    @property
    def ternary_params(self) -> int:
        """Weights of the ternary projections."""
        return self.n_layer * sum(r * c for r, c in self.linear_shapes().values())

    @property
    def n_params(self) -> int:
        """All weights (an untied output head counts once more than the embedding)."""
        tables = self.vocab * self.n_embd * (1 if self.tied_embeddings else 2)
        norms = self.n_layer * sum(self.norm_sizes().values()) + self.n_embd
        return self.ternary_params + tables + norms

    def bytes_per_token(self) -> int:
        """What a decode step reads in this engine: 2-bit projections, a 4-bit output head."""
        return self.ternary_params // 4 + self.vocab * self.n_embd // 2

    def kv_bytes(self, n_ctx: int) -> int:
        return 2 * self.n_layer * self.kv_dim * n_ctx * KV_BYTES

    def resident_bytes(self, n_ctx: int) -> int:
        """Memory to run it: the projections, the head (4-bit rows plus the 16-bit table kept for rescoring and
        embeddings), the KV cache for n_ctx tokens, and ~10% for activations and the runtime."""
        tables = self.vocab * self.n_embd * 2 * (1 if self.tied_embeddings else 2)
        weights = self.ternary_params // 4 + self.vocab * self.n_embd // 2 + tables
        return int(1.1 * (weights + self.kv_bytes(n_ctx)))
