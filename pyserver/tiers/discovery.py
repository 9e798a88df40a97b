"""Model files the user already has: configured folders, the Hugging Face cache, the sidecar's own models folder.
Each is identified by reading its header (GGUF metadata, or config.json + the safetensors headers), never by its
name, and matched to the registry by shape."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyserver.engine.errors import ModelLoadError
from pyserver.engine.gguf_file import GGUFFile
from pyserver.paths import cache_dir
from pyserver.tiers.registry import Registry, Shape

MAX_DEPTH = 6


@dataclass(frozen=True)
class FoundModel:
    path: Path  # a .gguf file or a checkpoint folder
    format: str
    architecture: str
    shape: Shape
    tokenizer: str  # GGUF tokenizer.ggml.model/pre, or the tokenizer.json model type
    size_bytes: int
    registry_id: str | None  # the registry model with this shape, if any

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "architecture": self.architecture,
                "params": self.shape.params, "tokenizer": self.tokenizer, "size_bytes": self.size_bytes,
                "registry_id": self.registry_id}


def default_folders(configured: Iterable[str | Path] = ()) -> list[Path]:
    hf = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" /
                                                                     "huggingface")) / "hub")
    return [*(Path(p) for p in configured), hf, models_folder()]


def models_folder() -> Path:
    """Where downloads go (and are looked for)."""
    return cache_dir() / "models"


def _gguf(path: Path) -> tuple[str, Shape, str]:
    f = GGUFFile(path)
    m = f.metadata
    arch = str(m.get("general.architecture", ""))

    def key(k: str) -> Any:
        v = m.get(f"{arch}.{k}")
        if v is None:
            raise ModelLoadError(path, f"missing {arch}.{k}")
        return v

    tokens = m.get("tokenizer.ggml.tokens")
    vocab = int(m.get(f"{arch}.vocab_size") or (len(tokens) if tokens is not None else 0))
    n_head = int(key("attention.head_count"))
    n_embd = int(key("embedding_length"))
    head_dim = m.get(f"{arch}.attention.key_length")
    shape = Shape(n_embd=n_embd, n_ff=int(key("feed_forward_length")), n_layer=int(key("block_count")),
                  n_head=n_head, n_head_kv=int(m.get(f"{arch}.attention.head_count_kv", n_head)), vocab=vocab,
                  head_dim=int(head_dim) if head_dim and int(head_dim) != n_embd // n_head else None,
                  tied_embeddings="output.weight" not in f.tensors)
    tok = f"{m.get('tokenizer.ggml.model', '?')}/{m.get('tokenizer.ggml.pre', '')}".rstrip("/")
    return arch, shape, tok


def _safetensors_dir(path: Path) -> tuple[str, Shape, str]:
    cfg = json.loads((path / "config.json").read_text())
    for st in path.glob("*.safetensors"):  # each header must be readable: a cut download is not a model
        with st.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelLoadError(st, "truncated safetensors header")
            n = struct.unpack("<Q", head)[0]
            if n > 100 << 20 or n + 8 > st.stat().st_size:
                raise ModelLoadError(st, "truncated or corrupt safetensors file")
            json.loads(fh.read(n))
    n_head = int(cfg["num_attention_heads"])
    n_embd = int(cfg["hidden_size"])
    head_dim = cfg.get("head_dim")
    shape = Shape(n_embd=n_embd, n_ff=int(cfg["intermediate_size"]), n_layer=int(cfg["num_hidden_layers"]),
                  n_head=n_head, n_head_kv=int(cfg.get("num_key_value_heads", n_head)),
                  vocab=int(cfg["vocab_size"]),
                  head_dim=int(head_dim) if head_dim and int(head_dim) != n_embd // n_head else None,
                  tied_embeddings=bool(cfg.get("tie_word_embeddings", False)))
    tok = "?"
    tj = path / "tokenizer.json"
    if tj.is_file():
        tok = str(json.loads(tj.read_text()).get("model", {}).get("type", "?"))
    arch = str(cfg.get("model_type", "?"))
    return arch, shape, tok


def identify(path: Path, registry: Registry | None = None) -> FoundModel:
    """Reads the header; raises ModelLoadError for what is not a model this engine can read."""
    if path.is_dir():
        fmt = "safetensors"
        arch, shape, tok = _safetensors_dir(path)
        size = sum(p.stat().st_size for p in path.glob("*.safetensors"))
    else:
        fmt = "gguf"
        arch, shape, tok = _gguf(path)
        size = path.stat().st_size
    match = None
    if registry is not None:
        key = (shape.n_embd, shape.n_ff, shape.n_layer, shape.n_head_kv, shape.vocab)
        match = next((m.id for m in registry.models if (m.shape.n_embd, m.shape.n_ff, m.shape.n_layer,
                                                         m.shape.n_head_kv, m.shape.vocab) == key), None)
    return FoundModel(path, fmt, arch, shape, tok, size, match)


def _candidates(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        depth = len(Path(dirpath).relative_to(folder).parts)
        if depth >= MAX_DEPTH:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if "config.json" in filenames and any(f.endswith(".safetensors") for f in filenames):
            yield Path(dirpath)
        for f in filenames:
            if f.endswith(".gguf") and not f.endswith(".part"):
                yield Path(dirpath) / f


def discover(folders: Iterable[Path], registry: Registry | None = None) -> tuple[list[FoundModel], list[str]]:
    """Models found, and one line per file that looked like a model but is not usable (with the reason)."""
    found, problems, seen = [], [], set()
    for folder in folders:
        for p in _candidates(folder):
            real = p.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                found.append(identify(p, registry))
            except (ModelLoadError, OSError, ValueError, KeyError) as exc:
                problems.append(f"{p}: {exc}")
    return found, problems
