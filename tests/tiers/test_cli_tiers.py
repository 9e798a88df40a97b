"""`python -m pyserver setup` and `models` end to end, in a private home (config, cache, Hugging Face cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pyserver.models import default_model_path


def run(args: list[str], home: Path) -> dict:
    env = os.environ | {
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "HF_HOME": str(home / "hf"),
        "HOME": str(home / "home"),
    }  # no other tool's models
    out = subprocess.run(
        [sys.executable, "-m", "pyserver", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def test_setup_writes_its_decision_and_models_lists_the_tiers(tmp_path: Path) -> None:
    shipped = default_model_path()
    assert shipped is not None
    library = tmp_path / "cache" / "ryzanstein" / "models"
    library.mkdir(parents=True)
    shutil.copy(shipped, library / "renamed.gguf")  # found by its header, whatever its name
    out = run(["setup"], tmp_path)
    config = json.loads((tmp_path / "config" / "ryzanstein" / "config.json").read_text())
    assert config["decision"] == out["decision"] and out["decision"]["reasons"]
    assert out["model_paths"] == {"ryzanstein-code": str(library / "renamed.gguf")}
    assert out["hardware"]["bandwidth_gbs"] > 0
    models = run(["models"], tmp_path)
    assert set(models["tiers"]) == {"shipped", "3B", "7B", "13B"}
    assert models["tiers"]["3B"][0]["id"] == "ternary-bonsai-1.7b" and models["tiers"]["3B"][0]["present"] is False
    assert [m["id"] for m in models["tiers"]["3B"][1:]] == ["bitnet-b1.58-2b4t", "falcon3-3b-instruct-1.58bit"]
    bonsai = models["tiers"]["3B"][0]
    assert bonsai["license"] == "Apache-2.0" and bonsai["published"] == "prism-ml/Ternary-Bonsai-1.7B-gguf"
    assert models["would_choose"]["use_now"] == "ryzanstein-code"
    # The first download offered: the 1.7B where it serves completions on this machine, else nothing.
    assert models["would_choose"]["first_download"] in ("ternary-bonsai-1.7b", None)
    doctor = run(["doctor"], tmp_path)
    assert doctor["setup"]["model"] == out["decision"]["model"]


def test_models_without_measuring(tmp_path: Path) -> None:
    """`models --no-measure` lists sizes and memory at once, with the speeds a provisional guess (measured: false),
    and writes no measurement."""
    models = run(["models", "--no-measure"], tmp_path)
    assert models["measured"] is False and models["tiers"]["3B"][0]["approx_download_bytes"] > 0.4e9
    assert not (tmp_path / "cache" / "ryzanstein" / "hardware.json").exists()
