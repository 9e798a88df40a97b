"""The tier registry (models/registry.json): tiers "shipped", "3B", "7B", "13B", each a list of published ternary
checkpoints, best first, with what it takes to run them computed from their shapes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyserver.models import shipped_model_dirs

TIER_ORDER = ("shipped", "3B", "7B", "13B")  # smallest to largest
REGISTRY_NAME = "registry.json"
KV_BYTES = 4  # the engine's KV cache is f32


@dataclass(frozen=True)
class Shape:
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    vocab: int
    head_dim: int | None = None
    tied_embeddings: bool = True  # the output head is the embedding table

    @property
    def hd(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    @property
    def ternary_params(self) -> int:
        """Weights of the ternary projections (q, k, v, o and the gated FFN)."""
        attn = self.n_embd * self.n_head * self.hd * 2 + self.n_embd * self.n_head_kv * self.hd * 2
        return self.n_layer * (attn + 3 * self.n_embd * self.n_ff)

    @property
    def params(self) -> int:
        return self.ternary_params + self.vocab * self.n_embd * (1 if self.tied_embeddings else 2)

    def bytes_per_token(self) -> int:
        """What a decode step reads in this engine: 2-bit projections, a 4-bit output head."""
        return self.ternary_params // 4 + self.vocab * self.n_embd // 2

    def kv_bytes(self, n_ctx: int) -> int:
        return 2 * self.n_layer * self.n_head_kv * self.hd * n_ctx * KV_BYTES

    def resident_bytes(self, n_ctx: int) -> int:
        """Memory to run it: the projections, the head (4-bit rows plus the 16-bit table kept for rescoring and
        embeddings), the KV cache for n_ctx tokens, and ~10% for activations and the runtime."""
        tables = self.vocab * self.n_embd * 2 * (1 if self.tied_embeddings else 2)
        weights = self.ternary_params // 4 + self.vocab * self.n_embd // 2 + tables
        return int(1.1 * (weights + self.kv_bytes(n_ctx)))


@dataclass(frozen=True)
class ModelSpec:
    id: str
    tier: str
    name: str
    format: str  # "gguf" | "safetensors"
    files: tuple[str, ...]
    repo: str | None
    url: str | None
    architecture: str
    tokenizer: str
    context_length: int
    shape: Shape
    published_params: int
    revision: str = "main"  # the branch, tag or commit downloads come from
    # Expected SHA-256 per file name (optional, lower-case hex): a download that differs is refused. The hub's own
    # LFS checksum is checked as well where it publishes one.
    sha256: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, tier: str, d: dict[str, Any]) -> ModelSpec:
        sha = d.get("sha256") or {}
        if not isinstance(sha, dict) or not all(isinstance(v, str) and len(v) == 64 for v in sha.values()):
            raise ValueError(f"{d.get('id')}: sha256 must map file names to 64 hex digits")
        return cls(id=d["id"], tier=tier, name=d["name"], format=d["format"], files=tuple(d["files"]),
                   repo=d.get("repo"), url=d.get("url"), architecture=d["architecture"], tokenizer=d["tokenizer"],
                   context_length=int(d["context_length"]), shape=Shape(**d["shape"]),
                   published_params=int(d["published_params"]), revision=str(d.get("revision") or "main"),
                   sha256=tuple(sorted((str(k), v.lower()) for k, v in sha.items())))

    def sha256_of(self, filename: str) -> str | None:
        return dict(self.sha256).get(filename)

    def summary(self, n_ctx: int) -> dict[str, Any]:
        s = self.shape
        return {"id": self.id, "tier": self.tier, "name": self.name, "architecture": self.architecture,
                "params": s.params, "published_params": self.published_params, "format": self.format,
                "files": list(self.files),
                "published": self.repo, "revision": self.revision,
                "tokenizer": self.tokenizer, "context_length": self.context_length,
                "approx_download_bytes": s.ternary_params // 4 + (s.params - s.ternary_params) * 2,
                "bytes_per_token": s.bytes_per_token(), "resident_bytes": s.resident_bytes(n_ctx)}


@dataclass(frozen=True)
class Registry:
    models: tuple[ModelSpec, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        path = path or registry_path()
        data = json.loads(path.read_text(encoding="utf-8"))
        models = [ModelSpec.from_json(tier, m) for tier in TIER_ORDER for m in data["tiers"].get(tier, [])]
        unknown = set(data["tiers"]) - set(TIER_ORDER)
        if unknown:
            raise ValueError(f"{path}: unknown tiers {sorted(unknown)} (known: {', '.join(TIER_ORDER)})")
        return cls(tuple(models))

    def tier(self, name: str) -> list[ModelSpec]:
        return [m for m in self.models if m.tier == name]

    def by_id(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)


def registry_path() -> Path:
    """RYZANSTEIN_REGISTRY (another registry file: a private mirror's, or a test's), else the shipped one."""
    override = os.environ.get("RYZANSTEIN_REGISTRY")
    if override:
        return Path(override)
    for d in shipped_model_dirs():
        if (d / REGISTRY_NAME).is_file():
            return d / REGISTRY_NAME
    raise FileNotFoundError(f"{REGISTRY_NAME} not found in {', '.join(map(str, shipped_model_dirs()))}")
