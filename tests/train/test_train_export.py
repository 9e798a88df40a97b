"""A few CPU training steps of a small model, exported to GGUF: the engine loads it with its FIM orders and languages,
reproduces PyTorch's logits on held-out code, and a resumed run continues the same batches (needs the `train`
extra; skipped without PyTorch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from pyserver.engine import Model  # noqa: E402
from pyserver.engine.generate import generate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHAPE = [
    "--layers",
    "2",
    "--embd",
    "256",
    "--ff",
    "512",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--seq",
    "128",
    "--batch-tokens",
    "512",
    "--micro-batch",
    "4",
    "--eval-windows",
    "4",
    "--eval-fim",
    "4",
    "--threads",
    "1",
]


def run(*args: str) -> None:
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def trained(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train")
    run("-m", "models.train.train", "--out", str(out), "--corpus", str(small_corpus), "--steps", "6", *SHAPE)
    run(
        "-m",
        "models.train.export",
        "--ckpt",
        str(out / "checkpoint.pt"),
        "--out",
        str(out / "m.gguf"),
        "--corpus",
        str(small_corpus),
    )
    return out


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train.log").read_text().splitlines()]


def test_log_has_losses_and_fim_figures(trained: Path) -> None:
    ev = events(trained)
    done = [e for e in ev if e.get("event") == "done"][-1]
    assert done["step"] == 6
    ev_eval = [e for e in ev if e.get("event") == "eval"][-1]
    for k in ("valid_loss", "fim_middle_psm", "fim_middle_psm_no_suffix", "fim_middle_spm", "suffix_value_spm"):
        assert np.isfinite(ev_eval[k])


def test_engine_matches_pytorch(trained: Path) -> None:
    path = trained / "m.gguf"
    model = Model.load(path, head="f32")
    ref = np.load(path.with_suffix(".reference.npz"))
    tokens, want = [int(t) for t in ref["tokens"]], ref["logits"]
    got = model.session().append(tokens, n_logits=len(tokens))
    err = np.abs(got - want).max(axis=1) / np.abs(want).max()
    assert np.median(err) < 5e-3 and err.max() < 3e-2
    assert (got.argmax(axis=1) == want.argmax(axis=1)).mean() >= 0.95
    assert model.traits.fim_orders == ("psm", "spm") and model.traits.languages == ("python",)
    assert model.config.arch == "bitnet" and model.config.context_length == 128
    tok = model.tokenizer
    assert tok is not None and tok.special.has_fim and tok.vocab_size == 2048
    r = generate(model.session(), tok.encode("def read_config(path):\n"), max_tokens=8)
    assert len(r.tokens) > 0


def test_resume_continues(trained: Path, small_corpus: Path) -> None:
    run(
        "-m",
        "models.train.train",
        "--out",
        str(trained),
        "--corpus",
        str(small_corpus),
        "--resume",
        "--steps",
        "8",
        *SHAPE,
    )
    starts = [e for e in events(trained) if e.get("event") == "start"]
    assert [s["step"] for s in starts] == [0, 6]
    assert [e for e in events(trained) if e.get("event") == "done"][-1]["step"] == 8
