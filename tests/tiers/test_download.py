"""Downloads through huggingface_hub, end to end against a hub on 127.0.0.1 (tests/tiers/fake_hub.py) with
HF_ENDPOINT pointed at it and HF_HOME in a temporary folder: success, a cut connection resumed, a cancel resumed by
the next call, corrupt bytes refused (nothing installed), offline and unreachable (what to place where)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from huggingface_hub import constants

from pyserver.tiers import discovery
from pyserver.tiers import download as dl
from pyserver.tiers.discovery import discover, identify, known_folders
from pyserver.tiers.download import (
    DownloadCancelled,
    DownloadError,
    DownloadOffline,
    download_model,
    installed_path,
)
from pyserver.tiers.registry import ModelSpec, Registry
from tests.support.builders import random_model, write_gguf, write_safetensors_dir
from tests.support.fake_hub import FakeHub
from tests.support.registry import tiny_entry, write_registry

REPO, ST_REPO = "tiny-org/tiny-ternary-gguf", "tiny-org/tiny-ternary"
DIMS: dict[str, Any] = dict(n_embd=256, n_ff=768, n_layer=2, vocab=320)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    write_gguf(random_model(rng, "bitnet", "TQ2_0", **DIMS), root / "m.gguf")
    write_gguf(random_model(rng, "bitnet", "TQ2_0", **(DIMS | {"n_ff": 512})), root / "other.gguf")
    write_safetensors_dir(random_model(rng, "llama", "I2_S", **(DIMS | {"n_ff": 1024})), root / "st", packed=True)
    out = {"gguf": (root / "m.gguf").read_bytes(), "other": (root / "other.gguf").read_bytes()}
    out |= {f"st/{p.name}": p.read_bytes() for p in (root / "st").iterdir()}
    return out


def registry(tmp: Path, **extra: object) -> Registry:
    tiny = tiny_entry(repo=REPO, **extra)
    st = tiny_entry(
        id="tiny-st",
        name="tiny checkpoint",
        format="safetensors",
        files=["config.json", "tokenizer.json", "*.safetensors"],
        repo=ST_REPO,
        architecture="llama",
    )
    st["shape"]["n_ff"] = 1024
    return Registry.load(write_registry(tmp / "registry.json", {"3B": [tiny], "7B": [st]}))


@pytest.fixture()
def hub(files: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.add(REPO, {"tiny-i2.gguf": files["gguf"], "README.md": b"# tiny\n"})
    fake.add(ST_REPO, {k.removeprefix("st/"): v for k, v in files.items() if k.startswith("st/")})
    httpd, _ = fake.start()
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "LLAMA_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # What huggingface_hub read from the environment when it was imported (once per process): as if this test's
    # environment had been there then. No real token or home file is read or written.
    monkeypatch.setattr(constants, "ENDPOINT", fake.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH", "AGENT_HARNESSES_PATH"):
        monkeypatch.setattr(constants, name, str(tmp_path / "hf" / name.lower()))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(discovery, "OLLAMA_SERVICE_BLOBS", tmp_path / "no-ollama")
    monkeypatch.setattr(dl, "CHUNK_BYTES", 64 << 10)  # several chunks per file: progress and cancel in between
    yield fake
    httpd.shutdown()
    httpd.server_close()


def spec(tmp: Path, model: str = "tiny-gguf", **extra: object) -> ModelSpec:
    s = registry(tmp, **extra).by_id(model)
    assert s is not None
    return s


def blobs(tmp: Path, repo: str = REPO) -> list[str]:
    folder = tmp / "hf" / "hub" / f"models--{repo.replace('/', '--')}" / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_downloads_into_the_shared_cache(
    hub: FakeHub, files: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_for_test")
    seen: list[tuple[int, int]] = []
    path = download_model(spec(tmp_path), progress=lambda d, t: seen.append((d, t)))
    commit = hub.repos[REPO].commit
    storage = tmp_path / "hf" / "hub" / "models--tiny-org--tiny-ternary-gguf"
    assert path == storage / "snapshots" / commit / "tiny-i2.gguf" and path.read_bytes() == files["gguf"]
    assert path.is_symlink() and (storage / "refs" / "main").read_text() == commit  # the library's own layout
    assert blobs(tmp_path) == [hashlib.sha256(files["gguf"]).hexdigest()]  # nothing .incomplete left
    size = len(files["gguf"])
    assert seen[-1] == (size, size) and len(seen) > 3 and all(t == size for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    ours = [r for r in hub.requests if "/resolve/" in r.path or r.path.startswith("/api/models/")]
    assert ours and all(r.authorization == "Bearer hf_secret_for_test" for r in ours)  # HF_TOKEN is sent
    assert not [r for r in hub.requests if "README" in r.path]  # only the model's files
    # Other tools see it; discovery finds it there, by its header; a second call needs no transfer.
    found, _ = discover(known_folders(), registry(tmp_path))
    assert [(f.registry_id, f.source) for f in found] == [("tiny-gguf", "huggingface")]
    assert installed_path(spec(tmp_path)) == path
    gets = len(hub.gets("tiny-i2.gguf"))
    assert download_model(spec(tmp_path)) == path and len(hub.gets("tiny-i2.gguf")) == gets


def test_a_cut_connection_is_resumed(hub: FakeHub, files: dict[str, bytes], tmp_path: Path) -> None:
    hub.cut_after["tiny-i2.gguf"] = 200_000
    path = download_model(spec(tmp_path))
    assert path.read_bytes() == files["gguf"]
    ranges = [r.range for r in hub.gets("tiny-i2.gguf")]
    assert ranges[0] is None and len(ranges) == 2 and ranges[1] is not None  # the rest only, not the whole file
    start = int(ranges[1].split("=")[1].rstrip("-"))
    assert 0 < start <= 200_000


def test_a_cancelled_download_resumes_on_the_next_call(hub: FakeHub, files: dict[str, bytes], tmp_path: Path) -> None:
    seen: list[int] = []
    with pytest.raises(DownloadCancelled, match="resume"):
        download_model(spec(tmp_path), progress=lambda d, t: seen.append(d), cancelled=lambda: len(seen) > 4)
    part = [b for b in blobs(tmp_path) if b.endswith(".incomplete")]
    assert len(part) == 1 and blobs(tmp_path) == part  # kept for resuming, and not installed
    kept = (tmp_path / "hf" / "hub" / "models--tiny-org--tiny-ternary-gguf" / "blobs" / part[0]).stat().st_size
    assert 0 < kept < len(files["gguf"]) and installed_path(spec(tmp_path)) is None
    assert not discover(known_folders(), registry(tmp_path))[0]
    after: list[int] = []
    path = download_model(spec(tmp_path), progress=lambda d, t: after.append(d))
    assert path.read_bytes() == files["gguf"]
    assert hub.gets("tiny-i2.gguf")[-1].range == f"bytes={kept}-" and after[0] == kept


def test_a_part_left_by_a_killed_process_is_resumed(hub: FakeHub, files: dict[str, bytes], tmp_path: Path) -> None:
    folder = tmp_path / "hf" / "hub" / "models--tiny-org--tiny-ternary-gguf" / "blobs"
    folder.mkdir(parents=True)
    (folder / (hashlib.sha256(files["gguf"]).hexdigest() + ".incomplete")).write_bytes(files["gguf"][:100_000])
    assert download_model(spec(tmp_path)).read_bytes() == files["gguf"]
    assert [r.range for r in hub.gets("tiny-i2.gguf")] == ["bytes=100000-"]


def test_a_server_that_ignores_ranges_sends_it_all_again(hub: FakeHub, files: dict[str, bytes], tmp_path: Path) -> None:
    folder = tmp_path / "hf" / "hub" / "models--tiny-org--tiny-ternary-gguf" / "blobs"
    folder.mkdir(parents=True)
    (folder / (hashlib.sha256(files["gguf"]).hexdigest() + ".incomplete")).write_bytes(files["gguf"][:100_000])
    hub.ignore_range = True
    seen: list[tuple[int, int]] = []
    path = download_model(spec(tmp_path), progress=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == files["gguf"] and seen[-1] == (len(files["gguf"]),) * 2


def test_corrupt_bytes_are_refused_and_nothing_is_installed(
    hub: FakeHub, files: dict[str, bytes], tmp_path: Path
) -> None:
    bad = bytearray(files["gguf"])
    bad[len(bad) // 2] ^= 0xFF
    hub.serve_instead["tiny-i2.gguf"] = bytes(bad)  # the hub lists the good file's SHA-256
    with pytest.raises(DownloadError, match="checksum mismatch.*deleted"):
        download_model(spec(tmp_path))
    assert blobs(tmp_path) == [] and installed_path(spec(tmp_path)) is None
    assert not discover(known_folders(), registry(tmp_path))[0]
    # The registry's own checksum: a file that differs from it is refused too (the hub's listing agrees with the
    # bytes here).
    hub.serve_instead.clear()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_model(spec(tmp_path, sha256={"tiny-i2.gguf": "ab" * 32}))
    assert blobs(tmp_path) == []
    good = hashlib.sha256(files["gguf"]).hexdigest()
    assert download_model(spec(tmp_path, sha256={"tiny-i2.gguf": good})).read_bytes() == files["gguf"]


def test_a_file_that_is_not_the_model_is_refused(hub: FakeHub, files: dict[str, bytes], tmp_path: Path) -> None:
    hub.add(REPO, {"tiny-i2.gguf": b"<html>a proxy's error page</html>" * 100})
    with pytest.raises(DownloadError, match="does not parse.*deleted"):
        download_model(spec(tmp_path))
    assert blobs(tmp_path) == []
    hub.add(REPO, {"tiny-i2.gguf": files["other"]})  # a real GGUF, of another shape
    with pytest.raises(DownloadError, match="n_ff=512.*deleted"):
        download_model(spec(tmp_path))
    assert blobs(tmp_path) == []


def test_offline_says_what_to_place_where(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadOffline) as err:
        download_model(spec(tmp_path))
    msg = str(err.value)
    assert "HF_HUB_OFFLINE" in msg and "tiny-i2.gguf" in msg and "ryzanstein.modelFolders" in msg
    assert str(tmp_path / "cache" / "ryzanstein" / "models") in msg
    assert err.value.files == [f"{hub.url}/{REPO}/resolve/main/tiny-i2.gguf"] and not hub.requests
    # Once it is in the cache, offline is no obstacle.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path = download_model(spec(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(hub.requests)
    assert download_model(spec(tmp_path)) == path and len(hub.requests) == n


def test_an_unreachable_hub_says_what_to_place_where(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(DownloadOffline, match="cannot be reached.*ryzanstein.modelFolders"):
        download_model(spec(tmp_path))


def test_a_gated_repository_asks_for_a_token(hub: FakeHub, tmp_path: Path) -> None:
    hub.status = 401
    with pytest.raises(DownloadError, match="HF_TOKEN"):
        download_model(spec(tmp_path))


def test_a_checkpoint_folder(hub: FakeHub, files: dict[str, bytes], tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    path = download_model(spec(tmp_path, "tiny-st"), progress=lambda d, t: seen.append((d, t)))
    total = sum(len(v) for k, v in files.items() if k.startswith("st/"))
    assert path.is_dir() and seen[-1] == (total, total)
    assert {p.name for p in path.iterdir()} == {k.removeprefix("st/") for k in files if k.startswith("st/")}
    found = identify(path, registry(tmp_path))
    assert found.registry_id == "tiny-st" and found.format == "safetensors"
    assert installed_path(spec(tmp_path, "tiny-st")) == path


# A Ternary-Bonsai-like entry: the committed tiny Qwen3 fixture (llama.cpp's Q2_0 of a random ternary file with group
# scales, Qwen's specials and ChatML template) published under a Bonsai-style repository beside an F16 file that a
# download must leave alone, as PrismML's repositories hold both.
QWEN3_FIXTURE = Path(__file__).resolve().parents[2] / "models" / "fixtures" / "qwen3-tiny-outliers-q2_0.gguf"
QWEN3_REPO = "tiny-org/Tiny-Bonsai-gguf"
QWEN3_SHAPE = {"n_embd": 256, "n_ff": 512, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "vocab": 8256, "head_dim": 64}


def qwen3_spec(tmp: Path) -> ModelSpec:
    entry = tiny_entry(
        id="tiny-bonsai",
        name="tiny Bonsai",
        files=["Tiny-Bonsai-Q2_0.gguf"],
        repo=QWEN3_REPO,
        architecture="qwen3",
        tokenizer="qwen2",
        ternary_tables=True,
        group_size=64,
        shape=dict(QWEN3_SHAPE),
    )
    s = Registry.load(write_registry(tmp / "qwen3-registry.json", {"3B": [entry]})).by_id("tiny-bonsai")
    assert s is not None
    return s


def test_a_qwen3_model_downloads_through_the_verified_path(
    hub: FakeHub, files: dict[str, bytes], tmp_path: Path
) -> None:
    from pyserver.engine import Model

    q2 = QWEN3_FIXTURE.read_bytes()
    hub.add(QWEN3_REPO, {"Tiny-Bonsai-Q2_0.gguf": q2, "Tiny-Bonsai-F16.gguf": b"F16 source" * 1000})
    path = download_model(qwen3_spec(tmp_path))
    assert path.name == "Tiny-Bonsai-Q2_0.gguf" and path.read_bytes() == q2
    assert blobs(tmp_path, QWEN3_REPO) == [hashlib.sha256(q2).hexdigest()]  # the F16 file was not fetched
    assert not hub.gets("Tiny-Bonsai-F16.gguf")
    reg = Registry.load(tmp_path / "qwen3-registry.json")
    found, _ = discover(known_folders(), reg)
    assert [(f.registry_id, f.architecture, f.weights) for f in found] == [("tiny-bonsai", "qwen3", "Q2_0")]
    m = Model.load(path)
    assert m.config.arch == "qwen3" and m.tokenizer is not None and m.tokenizer.special.has_fim
    # A file of another shape under the same name is refused by its header and deleted.
    hub.add(QWEN3_REPO, {"Tiny-Bonsai-Q2_0.gguf": files["gguf"]})
    with pytest.raises(DownloadError, match="n_embd=256 n_ff=768.*deleted"):
        download_model(qwen3_spec(tmp_path))
