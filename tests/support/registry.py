"""Registry entries for the tests' tiny models (the shape `random_model(..., n_embd=256, n_ff=768, n_layer=2,
vocab=320)` builds), and registry files made of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_SHAPE = {"n_embd": 256, "n_ff": 768, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "vocab": 320}


def tiny_entry(**fields: Any) -> dict[str, Any]:
    """A GGUF "bitnet" entry of the tiny shape; `fields` replace any of its keys."""
    return {
        "id": "tiny-gguf",
        "name": "tiny",
        "format": "gguf",
        "files": ["tiny-i2.gguf"],
        "repo": None,
        "url": None,
        "published_params": 0,
        "architecture": "bitnet",
        "tokenizer": "bpe",
        "context_length": 256,
        "shape": dict(TINY_SHAPE),
    } | fields


def write_registry(path: Path, tiers: dict[str, list[dict[str, Any]]]) -> Path:
    path.write_text(json.dumps({"version": 1, "tiers": tiers}))
    return path
