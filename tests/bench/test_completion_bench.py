"""The typing-replay benchmark runs the server's pipeline and reports consistent figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyserver.bench.completion import run_completion_bench
from tests.support.builders import random_model, write_gguf


def test_small_replay(tmp_path: Path) -> None:
    m = random_model(np.random.default_rng(0), "bitnet", "TQ2_0", n_layer=1)
    path = write_gguf(m, tmp_path / "m.gguf", context_length=2048)
    r = run_completion_bench(path, files=1, chars_per_file=40, seed=1, with_index=False)
    assert r["requests"] > 0 and 0.0 <= r["cache_hit_rate"] <= 1.0
    assert r["p50_ms"] is not None and r["p95_ms"] >= r["p50_ms"]
    assert r["suggestions_shown"] <= r["requests"]
