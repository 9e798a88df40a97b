"""Model files the user already has: configured folders, the Hugging Face cache, the sidecar's own models folder,
and other tools' stores (LM Studio, llama.cpp's cache, Ollama's blobs). Each is identified by reading its header
(GGUF metadata, or config.json + the safetensors headers), never by its name, and matched to the registry by shape
(only files whose projections this engine can load: ternary, or floats holding ternary values)."""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyserver.engine.config import ModelConfig
from pyserver.engine.errors import ModelLoadError
from pyserver.engine.gguf_file import GGUF_MAGIC, GGUFFile
from pyserver.engine.gguf_loader import gguf_config
from pyserver.engine.safetensors_loader import HF_NORMS, hf_config
from pyserver.engine.weights import FLOAT_TABLE_TYPES, TERNARY_FORMATS
from pyserver.paths import cache_dir
from pyserver.tiers.registry import ModelSpec, Registry

MAX_DEPTH = 6
# Ollama stores each layer of a model as blobs/sha256-<hex digest>, no extension (partial downloads carry a suffix).
OLLAMA_BLOB = re.compile(r"sha256[-:][0-9a-f]{64}")
LOADABLE_WEIGHTS = (*TERNARY_FORMATS, *FLOAT_TABLE_TYPES)
OLLAMA_SERVICE_BLOBS = Path("/usr/share/ollama/.ollama/models/blobs")  # the Linux service install's own store


@dataclass(frozen=True)
class FoundModel:
    path: Path  # a .gguf file or a checkpoint folder
    format: str
    architecture: str
    shape: ModelConfig
    tokenizer: str  # GGUF tokenizer.ggml.model/pre, or the tokenizer.json model type
    size_bytes: int
    registry_id: str | None  # the registry model with this shape, if any (and only if the engine can load it)
    weights: str = ""  # how the projections are stored: TQ2_0, I2_S, F16, Q4_K, ... ("" for safetensors)
    source: str = ""  # which store it was found in: configured, huggingface, ryzanstein, lm-studio, llama.cpp, ollama

    @property
    def usable(self) -> bool:
        """Whether this engine can load the projections (quantized non-ternary files, e.g. Q4_K, it cannot)."""
        return self.format == "safetensors" or self.weights in LOADABLE_WEIGHTS

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "architecture": self.architecture,
            "params": self.shape.n_params,
            "tokenizer": self.tokenizer,
            "size_bytes": self.size_bytes,
            "registry_id": self.registry_id,
            "weights": self.weights,
            "usable": self.usable,
            "source": self.source,
        }


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or _home() / ".cache")


def hf_hub_cache() -> Path:
    """The shared Hugging Face cache, as huggingface_hub computes it (read from the environment on each call)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    home = os.environ.get("HF_HOME")
    return (Path(os.path.expanduser(home)) if home else _xdg_cache() / "huggingface") / "hub"


def other_tool_folders() -> list[tuple[str, Path]]:
    """Where LM Studio, llama.cpp and Ollama keep the models they downloaded (those that exist)."""
    home = _home()
    out = [
        ("lm-studio", home / ".lmstudio" / "models"),
        ("lm-studio", home / ".cache" / "lm-studio" / "models"),
        ("llama.cpp", Path(os.environ["LLAMA_CACHE"]) if os.environ.get("LLAMA_CACHE") else _xdg_cache() / "llama.cpp"),
    ]
    ollama = os.environ.get("OLLAMA_MODELS")
    out.append(("ollama", Path(ollama) / "blobs" if ollama else home / ".ollama" / "models" / "blobs"))
    if not ollama:  # the Linux service install keeps its store under its own user
        out.append(("ollama", OLLAMA_SERVICE_BLOBS))
    return [(src, p) for src, p in out if p.is_dir()]


def known_folders(configured: Iterable[str | Path] = ()) -> list[tuple[str, Path]]:
    """Every folder searched for models, with the store it belongs to, in order of preference."""
    return [
        *(("configured", Path(p).expanduser()) for p in configured),
        ("huggingface", hf_hub_cache()),
        ("ryzanstein", models_folder()),
        *other_tool_folders(),
    ]


def default_folders(configured: Iterable[str | Path] = ()) -> list[Path]:
    return [p for _, p in known_folders(configured)]


def models_folder() -> Path:
    """Where model files placed by hand are looked for (downloads go to the Hugging Face cache)."""
    return cache_dir() / "models"


def shape_key(shape: ModelConfig) -> tuple[int, int, int, int, int]:
    """What identifies a registry model's shape (head count and head size follow from these for its family)."""
    return shape.n_embd, shape.n_ff, shape.n_layer, shape.n_head_kv, shape.vocab


def _gguf(path: Path) -> tuple[str, ModelConfig, str, str]:
    f = GGUFFile(path)
    m = f.metadata
    tok = f"{m.get('tokenizer.ggml.model', '?')}/{m.get('tokenizer.ggml.pre', '')}".rstrip("/")
    proj = next((f.tensors[n] for n in ("blk.0.ffn_down.weight", "blk.0.attn_q.weight") if n in f.tensors), None)
    return f.architecture, gguf_config(f), tok, proj.type_name if proj is not None else "?"


def check_safetensors_header(st: Path) -> dict[str, Any]:
    """The header of a safetensors file; ModelLoadError when it is cut or corrupt (a cut download is not a model)."""
    with st.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelLoadError(st, "truncated safetensors header")
        n = struct.unpack("<Q", head)[0]
        size = st.stat().st_size
        if n > 100 << 20 or n + 8 > size:
            raise ModelLoadError(st, "truncated or corrupt safetensors file")
        try:
            header = json.loads(fh.read(n))
        except ValueError as exc:
            raise ModelLoadError(st, f"corrupt safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelLoadError(st, "corrupt safetensors header: not a JSON object")
    end = max(
        (
            int(e["data_offsets"][1])
            for k, e in header.items()
            if k != "__metadata__" and isinstance(e, dict) and "data_offsets" in e
        ),
        default=0,
    )
    if 8 + n + end > size:
        raise ModelLoadError(st, f"file is truncated: the tensors need {8 + n + end} bytes, the file has {size}")
    return header


def _safetensors_dir(path: Path) -> tuple[str, ModelConfig, str]:
    cfg_path = path / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(cfg_path, f"unreadable config.json: {exc}") from exc
    if not isinstance(cfg, dict):
        raise ModelLoadError(cfg_path, "config.json is not a JSON object")
    names: set[str] = set()
    for st in path.glob("*.safetensors"):  # each header must be readable: a cut download is not a model
        names.update(check_safetensors_header(st))
    sub_norms = any(f"model.layers.0.{n}.weight" in names for n in HF_NORMS["attn_sub_norm"])
    tied = bool(cfg.get("tie_word_embeddings", "lm_head.weight" not in names))
    shape = hf_config(cfg, cfg_path, sub_norms=sub_norms, tied=tied)
    tok = "?"
    tj = path / "tokenizer.json"
    if tj.is_file():
        tok = str(json.loads(tj.read_text()).get("model", {}).get("type", "?"))
    return str(cfg.get("model_type", "?")), shape, tok


def identify(path: Path, registry: Registry | None = None, source: str = "") -> FoundModel:
    """Reads the header; raises ModelLoadError for what is not a model this engine can read."""
    weights = ""
    if path.is_dir():
        fmt = "safetensors"
        arch, shape, tok = _safetensors_dir(path)
        size = sum(p.stat().st_size for p in path.glob("*.safetensors"))
    else:
        fmt = "gguf"
        arch, shape, tok, weights = _gguf(path)
        size = path.stat().st_size
    found = FoundModel(path, fmt, arch, shape, tok, size, None, weights, source)
    if registry is not None and found.usable:
        key = shape_key(shape)
        match = next((m.id for m in registry.models if shape_key(m.shape) == key), None)
        found = FoundModel(path, fmt, arch, shape, tok, size, match, weights, source)
    return found


def shape_mismatch(found: FoundModel, spec: ModelSpec) -> str | None:
    """Why a file is not the registry model it should be (None when its header matches the registry's shape)."""
    if not found.usable:
        return f"its projections are {found.weights}, which this engine cannot load (ternary or float expected)"
    if shape_key(found.shape) != shape_key(spec.shape) or found.shape.n_head != spec.shape.n_head:
        want, got = spec.shape, found.shape
        return (
            f"its header gives the shape n_embd={got.n_embd} n_ff={got.n_ff} n_layer={got.n_layer} "
            f"n_head={got.n_head} n_head_kv={got.n_head_kv} vocab={got.vocab}; {spec.id} has n_embd="
            f"{want.n_embd} n_ff={want.n_ff} n_layer={want.n_layer} n_head={want.n_head} "
            f"n_head_kv={want.n_head_kv} vocab={want.vocab}"
        )
    return None


def _is_gguf_blob(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


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
            elif OLLAMA_BLOB.fullmatch(f) and _is_gguf_blob(Path(dirpath) / f):
                # Ollama's layers: the model is a GGUF named by its digest; the others (licence, template,
                # parameters) are not models and are passed over without a word.
                yield Path(dirpath) / f


def discover(
    folders: Iterable[Path | tuple[str, Path]], registry: Registry | None = None
) -> tuple[list[FoundModel], list[str]]:
    """Models found, and one line per file that looked like a model but is not usable (with the reason).
    Folders are paths or (source, path) pairs (`known_folders`); a file reachable twice is listed once."""
    found, problems, seen = [], [], set()
    for entry in folders:
        source, folder = entry if isinstance(entry, tuple) else ("", entry)
        for p in _candidates(Path(folder)):
            real = p.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                found.append(identify(p, registry, source))
            except (ModelLoadError, OSError, ValueError, KeyError) as exc:
                problems.append(f"{p}: {exc}")
    return found, problems
