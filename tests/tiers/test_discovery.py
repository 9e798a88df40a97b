"""Discovery: model files in configured folders, a Hugging Face cache and the models folder, identified by their
headers (synthetic files of each tier's architecture, small dimensions, real headers) and matched by shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pyserver.tiers.discovery import discover, identify
from pyserver.tiers.registry import Registry
from tests.support.builders import random_model, write_gguf, write_gguf_i2s, write_safetensors_dir

# One small model per tier, each of a real tier's architecture and file format.
TIERS = {
    "shipped": ("bitnet", "TQ2_0", dict(n_embd=256, n_ff=512, n_layer=1, vocab=320)),
    "3B": ("bitnet-b1.58", "I2_S", dict(n_embd=256, n_ff=768, n_layer=2, vocab=320)),
    "7B": ("llama", "TQ2_0", dict(n_embd=256, n_ff=1024, n_layer=2, vocab=320)),
    "13B": ("llama", "I2_S", dict(n_embd=256, n_ff=1024, n_layer=3, vocab=320)),  # a safetensors checkpoint
}


def registry_file(path: Path) -> Path:
    tiers = {}
    for tier, (arch, _, dims) in TIERS.items():
        shape = {
            "n_embd": dims["n_embd"],
            "n_ff": dims["n_ff"],
            "n_layer": dims["n_layer"],
            "n_head": 4,
            "n_head_kv": 2,
            "vocab": dims["vocab"],
        }
        tiers[tier] = [
            {
                "id": f"synthetic-{tier}",
                "name": tier,
                "format": "gguf",
                "files": ["x"],
                "repo": None,
                "published_params": 0,
                "url": None,
                "architecture": arch,
                "tokenizer": "bpe",
                "context_length": 256,
                "shape": shape,
            }
        ]
    path.write_text(json.dumps({"version": 1, "tiers": tiers}))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Registry]:
    root = tmp_path_factory.mktemp("lib")
    rng = np.random.default_rng(0)
    mine, hub = root / "my-models", root / "hf" / "hub"
    for tier, (arch, fmt, dims) in TIERS.items():
        m = random_model(rng, arch, fmt, **dims)
        if tier == "13B":  # the Hugging Face cache layout, a packed-ternary checkpoint
            write_safetensors_dir(m, hub / "models--org--big" / "snapshots" / "abc123", packed=True)
        elif fmt == "I2_S":
            write_gguf_i2s(m, (mine / "nested").mkdir(parents=True, exist_ok=True) or mine / "nested" / "x.gguf")
        else:  # misleading names: identification reads headers
            mine.mkdir(exist_ok=True)
            write_gguf(m, mine / f"{'llama-70b' if tier == 'shipped' else 'tiny'}-{tier}.gguf", arch=arch)
    (mine / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)  # a cut download
    (mine / "partial.gguf.part").write_bytes(b"GGUF")
    return mine, hub, Registry.load(registry_file(root / "registry.json"))


def test_finds_and_identifies_every_tier(library: tuple[Path, Path, Registry]) -> None:
    mine, hub, registry = library
    found, problems = discover([mine, hub, mine / "missing"], registry)
    by_id = {f.registry_id: f for f in found}
    assert set(by_id) == {f"synthetic-{t}" for t in TIERS}
    assert by_id["synthetic-3B"].architecture == "bitnet-b1.58" and by_id["synthetic-3B"].format == "gguf"
    assert by_id["synthetic-7B"].architecture == "llama"
    big = by_id["synthetic-13B"]
    assert big.format == "safetensors" and big.path.name == "abc123" and big.shape.n_layer == 3
    assert by_id["synthetic-shipped"].path.name == "llama-70b-shipped.gguf"  # the name says 70B; the header does not
    assert len(problems) == 1 and "broken.gguf" in problems[0]  # reported, not used; .part files are skipped


def test_identify_reads_the_shape(library: tuple[Path, Path, Registry]) -> None:
    mine, _, registry = library
    f = identify(mine / "tiny-7B.gguf", registry)
    assert (f.shape.n_embd, f.shape.n_ff, f.shape.n_layer, f.shape.n_head, f.shape.n_head_kv, f.shape.vocab) == (
        256,
        1024,
        2,
        4,
        2,
        320,
    )
    assert f.tokenizer.startswith("gpt2")
