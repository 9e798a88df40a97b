"""Models other tools downloaded: LM Studio's folders, llama.cpp's cache and Ollama's blob store, in a fake home
holding real small GGUF files. Each is identified by its header (Ollama's blobs have no extension at all); a blob
that is not a model is passed over without a word; a quantized non-ternary file is listed but never taken for a
registry model of the same shape."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyserver.tiers import discovery
from pyserver.tiers.discovery import discover, known_folders, other_tool_folders
from pyserver.tiers.registry import Registry
from tests.support.builders import random_model, write_gguf, write_gguf_i2s
from tests.support.registry import tiny_entry, write_registry

DIMS: dict[str, Any] = dict(n_embd=256, n_ff=768, n_layer=2, vocab=320)


def registry(tmp: Path) -> Registry:
    entry = tiny_entry(id="tiny-3b", files=["x.gguf"])
    return Registry.load(write_registry(tmp / "registry.json", {"3B": [entry]}))


def retype(path: Path, tensor: str, type_id: int) -> None:
    """Rewrites one tensor's type id in the GGUF directory (IQ1_S = 19 takes fewer bytes than TQ2_0, so the
    file stays consistent): a stand-in for the Q4_K files LM Studio and Ollama are full of."""
    data = bytearray(path.read_bytes())
    name = tensor.encode()
    at = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    struct.pack_into("<I", data, at + 4 + 8 * n_dims, type_id)
    path.write_bytes(bytes(data))


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for var in ("LLAMA_CACHE", "OLLAMA_MODELS", "HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setattr(discovery, "OLLAMA_SERVICE_BLOBS", tmp_path / "usr-share-ollama" / "blobs")
    return home


def gguf_bytes(tmp: Path, seed: int, i2s: bool = False, **dims: int) -> bytes:
    rng = np.random.default_rng(seed)
    path = tmp / f"m{seed}.gguf"
    if i2s:
        write_gguf_i2s(random_model(rng, "bitnet-b1.58", "I2_S", **(DIMS | dims)), path)
    else:
        write_gguf(random_model(rng, "bitnet", "TQ2_0", **(DIMS | dims)), path)
    return path.read_bytes()


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_lm_studio_llama_cpp_and_ollama(home: Path, tmp_path: Path) -> None:
    model = gguf_bytes(tmp_path, 0)
    other = gguf_bytes(tmp_path, 1, n_ff=512)  # a model of no registry shape
    digest = hashlib.sha256(model).hexdigest()
    lms = put(home / ".lmstudio" / "models" / "someone" / "Tiny-GGUF" / "llama-3-70b-q4.gguf", model)  # names lie
    old_lms = put(home / ".cache" / "lm-studio" / "models" / "a" / "b" / "other.gguf", other)
    llama = put(home / ".cache" / "llama.cpp" / "org_repo_tiny.gguf", gguf_bytes(tmp_path, 2, i2s=True))
    blobs = home / ".ollama" / "models" / "blobs"
    ollama = put(blobs / f"sha256-{digest}", model)  # a copy: found by its header, listed as its own file
    put(blobs / f"sha256-{'1' * 64}", b'{"stop": ["<|eot_id|>"], "temperature": 0.7}')  # parameters: not a model
    put(blobs / f"sha256-{'2' * 64}", b"LLAMA 3 COMMUNITY LICENSE AGREEMENT" * 10)  # the licence
    put(blobs / f"sha256-{'3' * 64}-partial", model[:1000])  # a download in progress
    put(home / ".ollama" / "models" / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest", b"{}")
    assert [src for src, _ in other_tool_folders()] == ["lm-studio", "lm-studio", "llama.cpp", "ollama"]
    found, problems = discover(known_folders(), registry(tmp_path))
    by_path = {f.path: f for f in found}
    assert set(by_path) == {lms, old_lms, llama, ollama} and problems == []
    assert (by_path[lms].registry_id, by_path[lms].source, by_path[lms].weights) == ("tiny-3b", "lm-studio", "TQ2_0")
    assert by_path[old_lms].registry_id is None and by_path[old_lms].shape.n_ff == 512
    assert (by_path[llama].registry_id, by_path[llama].source, by_path[llama].weights) == (
        "tiny-3b",
        "llama.cpp",
        "I2_S",
    )
    assert (by_path[ollama].registry_id, by_path[ollama].source) == ("tiny-3b", "ollama")


def test_environment_overrides(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = gguf_bytes(tmp_path, 0)
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "llcache"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    a = put(tmp_path / "llcache" / "x.gguf", model)
    b = put(tmp_path / "ollama" / "blobs" / f"sha256-{hashlib.sha256(model).hexdigest()}", model)
    put(home / ".ollama" / "models" / "blobs" / f"sha256-{'4' * 64}", model)  # not looked at: OLLAMA_MODELS rules
    found, _ = discover(known_folders(), registry(tmp_path))
    assert sorted((f.source, f.path) for f in found) == [("llama.cpp", a), ("ollama", b)]


def test_a_quantized_model_is_listed_but_never_taken_for_a_registry_model(home: Path, tmp_path: Path) -> None:
    path = put(home / ".lmstudio" / "models" / "x" / "q.gguf", gguf_bytes(tmp_path, 0))
    retype(path, "blk.0.ffn_down.weight", 19)
    (found,), problems = discover(known_folders(), registry(tmp_path))
    assert problems == [] and found.weights == "IQ1_S" and not found.usable and found.registry_id is None
    assert found.to_json()["usable"] is False


def test_no_tool_installed(home: Path) -> None:
    assert other_tool_folders() == []
    assert [src for src, _ in known_folders(["/somewhere"])] == ["configured", "huggingface", "ryzanstein"]
