"""The typing-replay benchmark runs the server's pipeline and reports consistent figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pyserver.bench.completion import run_completion_bench
from tests.support.builders import random_model, write_gguf


def test_small_replay(tmp_path: Path) -> None:
    m = random_model(np.random.default_rng(0), "bitnet", "TQ2_0", n_layer=1)
    path = write_gguf(m, tmp_path / "m.gguf", context_length=2048)
    r = run_completion_bench(path, files=1, chars_per_file=40, seed=1, with_index=False)
    assert r["requests"] > 0 and 0.0 <= r["cache_hit_rate"] <= 1.0
    assert r["p50_ms"] is not None and r["p95_ms"] >= r["p50_ms"]
    assert r["suggestions_shown"] <= r["requests"]


def test_latency_at_a_qwen3_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench completion --shape bonsai-1.7b`'s path on the qwen3-tiny shape: the random Q2_0 Qwen3 file (Qwen2
    vocabulary, FIM tokens) served through the server's pipeline; the report's figures agree with each other and
    with the targets it marks (no timing asserted)."""
    from pyserver.bench.completion_latency import TARGETS_2B4T, run_latency_bench

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # qwen3_file writes its files here
    r = run_latency_bench(None, "qwen3-tiny", files=1, rest_s=0.2, with_index=False)
    assert Path(r["model"]).name == "qwen3-qwen3-tiny-g64-q2_0.gguf" and Path(r["model"]).is_relative_to(tmp_path)
    (prompt,) = r["prompts"]
    assert 0 < prompt["cold_prompt_tokens"] <= 2048
    cold, keys = r["cold_first_suggestion_ms"], r["keystroke_ms"]
    assert cold["p50"] is not None and cold["max"] >= cold["p50"] and keys["n"] > 0
    assert r["met"] == {
        "cold_p50": cold["p50"] <= TARGETS_2B4T["cold_ms"],
        "warm_keystroke_p50": keys["p50"] <= TARGETS_2B4T["warm_keystroke_p50_ms"],
    }
    assert r["budget_misses"]["requests"] == 2 + keys["n"]  # one cold, one after the rest, then the keystrokes
