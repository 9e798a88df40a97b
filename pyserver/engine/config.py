"""The shape of a model, independent of the file it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    arch: str  # the file's architecture name: "bitnet", "bitnet-b1.58", "llama"
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    rope_dim: int
    vocab: int
    context_length: int
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    act: str = "silu"  # FFN gate activation: "silu" or "relu2" (squared ReLU)
    sub_norms: bool = True  # BitNet's RMSNorm before attn_output and ffn_down
    rope_neox: bool = True  # rotate pairs (i, i + rope_dim/2); False: adjacent pairs, as llama GGUF files need

    def native(self) -> dict[str, object]:
        """The dict the native `Model` constructor takes."""
        d = asdict(self)
        for key in ("arch", "context_length"):
            del d[key]
        return d

    @property
    def n_params(self) -> int:
        qd, kvd = self.n_head * self.head_dim, self.n_head_kv * self.head_dim
        per_layer = self.n_embd * (2 * qd + 2 * kvd) + 3 * self.n_embd * self.n_ff
        return self.n_layer * per_layer + self.vocab * self.n_embd
