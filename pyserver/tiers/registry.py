"""The tier registry (models/registry.json): tiers "shipped", "3B", "7B", "13B", each a list of published ternary
checkpoints, best first, with what it takes to run them computed from their shapes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyserver.engine.config import ModelConfig
from pyserver.models import shipped_model_dirs

TIER_ORDER = ("shipped", "3B", "7B", "13B")  # smallest to largest
REGISTRY_NAME = "registry.json"


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
    shape: ModelConfig  # the shape its files have (checked against their headers when found)
    published_params: int
    revision: str = "main"  # the branch, tag or commit downloads come from
    # Expected SHA-256 per file name (optional, lower-case hex): a download that differs is refused. The hub's own
    # LFS checksum is checked as well where it publishes one.
    sha256: tuple[tuple[str, str], ...] = ()
    # The refactors this model is measured too weak for, with the rate of useful answers that showed it
    # (`python -m pyserver bench refactors`): they are refused for it (capability.py).
    weak_tasks: tuple[tuple[str, float], ...] = ()
    # Ternary-Bonsai: the token embedding and the LM head are ternary too, with one FP16 scale per `group_size`
    # weights (the projections as well). The head then runs on the projection kernels (2 bits + the group's
    # scale a weight) instead of the engine's 4-bit head, and the file is ~2.125 bits a weight throughout.
    ternary_tables: bool = False
    group_size: int = 0  # weights per FP16 scale in the file (0: one scale per tensor or per 256-block)
    # The published size of the file (its model card), which the size computed from the shape is tested against;
    # 0 where the card gives none.
    published_file_bytes: int = 0
    license: str = ""

    @classmethod
    def from_json(cls, tier: str, d: dict[str, Any]) -> ModelSpec:
        sha = d.get("sha256") or {}
        if not isinstance(sha, dict) or not all(isinstance(v, str) and len(v) == 64 for v in sha.values()):
            raise ValueError(f"{d.get('id')}: sha256 must map file names to 64 hex digits")
        shape = ModelConfig.for_arch(d["architecture"], context_length=int(d["context_length"]), **d["shape"])
        return cls(
            id=d["id"],
            tier=tier,
            name=d["name"],
            format=d["format"],
            files=tuple(d["files"]),
            repo=d.get("repo"),
            url=d.get("url"),
            architecture=d["architecture"],
            tokenizer=d["tokenizer"],
            context_length=int(d["context_length"]),
            shape=shape,
            published_params=int(d["published_params"]),
            revision=str(d.get("revision") or "main"),
            sha256=tuple(sorted((str(k), v.lower()) for k, v in sha.items())),
            weak_tasks=tuple(sorted((str(k), float(v)) for k, v in (d.get("weak_tasks") or {}).items())),
            ternary_tables=bool(d.get("ternary_tables", False)),
            group_size=int(d.get("group_size") or 0),
            published_file_bytes=int(d.get("published_file_bytes") or 0),
            license=str(d.get("license") or ""),
        )

    def sha256_of(self, filename: str) -> str | None:
        return dict(self.sha256).get(filename)

    # --- what it costs (the shape's figures, with ternary tables and group scales where the files have them) ---
    @property
    def _weight_bytes(self) -> float:
        """Bytes a ternary weight takes: 2 bits, plus an FP16 scale per group where there are group scales."""
        return 0.25 + (2 / self.group_size if self.group_size else 0.0)

    @property
    def _table_params(self) -> int:
        return self.shape.vocab * self.shape.n_embd

    def bytes_per_token(self) -> int:
        """What a decode step reads: the projections and the head (ModelConfig.bytes_per_token's 4-bit head unless
        the head is ternary in the file)."""
        if not self.ternary_tables:
            return self.shape.bytes_per_token()
        return int((self.shape.ternary_params + self._table_params) * self._weight_bytes)

    def resident_bytes(self, n_ctx: int) -> int:
        """Memory to run it with n_ctx tokens of KV cache. Ternary tables: the projections and the head copied
        into the engine's layout, the file's (packed) embedding read a row at a time, +10% for the runtime."""
        if not self.ternary_tables:
            return self.shape.resident_bytes(n_ctx)
        proj = self.shape.ternary_params * self._weight_bytes
        tables = 2 * self._table_params * self._weight_bytes  # the head's copy and the embedding
        return int(1.1 * (proj + tables + self.shape.kv_bytes(n_ctx)))

    def download_bytes(self) -> int:
        """The file's size as computed from the shape (the norms' few weights left out with ternary tables)."""
        s = self.shape
        if not self.ternary_tables:
            return s.ternary_params // 4 + (s.n_params - s.ternary_params) * 2
        tables = self._table_params * (1 if s.tied_embeddings else 2)
        return int((s.ternary_params + tables) * self._weight_bytes)

    def summary(self, n_ctx: int) -> dict[str, Any]:
        s = self.shape
        return {
            "id": self.id,
            "tier": self.tier,
            "name": self.name,
            "architecture": self.architecture,
            "params": s.n_params,
            "published_params": self.published_params,
            "format": self.format,
            "files": list(self.files),
            "published": self.repo,
            "revision": self.revision,
            "tokenizer": self.tokenizer,
            "context_length": self.context_length,
            "approx_download_bytes": self.download_bytes(),
            "published_file_bytes": self.published_file_bytes or None,
            "license": self.license or None,
            "bytes_per_token": self.bytes_per_token(),
            "resident_bytes": self.resident_bytes(n_ctx),
        }


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

    def by_file(self, name: str) -> ModelSpec | None:
        """The model one of whose files is called `name`."""
        return next((m for m in self.models if name in m.files), None)


def registry_path() -> Path:
    """RYZANSTEIN_REGISTRY (another registry file: a private mirror's, or a test's), else the shipped one."""
    override = os.environ.get("RYZANSTEIN_REGISTRY")
    if override:
        return Path(override)
    for d in shipped_model_dirs():
        if (d / REGISTRY_NAME).is_file():
            return d / REGISTRY_NAME
    raise FileNotFoundError(f"{REGISTRY_NAME} not found in {', '.join(map(str, shipped_model_dirs()))}")
