"""The confidence gate: evidence from a generation, the logistic fit, the threshold, and where calibrations live."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pyserver.completion.calibration import beside, load_gate, model_identity, save_gate
from pyserver.completion.confidence import (
    ConfidenceGate,
    Evidence,
    calibrate,
    first_line_evidence,
    fit_logistic,
    precision_coverage,
)
from pyserver.engine.generate import GenerationResult


def test_evidence_covers_the_chosen_tokens_of_the_first_line() -> None:
    pieces = [b"re", b"turn", b" x", b"\n", b"y"]
    # Two forced tokens (the typed "return"), then " x", "\n" (end of line), then "y" on the next line.
    r = GenerationResult(
        tokens=[0, 1, 2, 3, 4],
        token_logprobs=[-9.0, -9.0, -0.5, -1.5, -4.0],
        token_margins=[0.0, 0.0, 2.0, 0.1, 0.0],
        forced_tokens=2,
    )
    ev = first_line_evidence(r, pieces)
    assert ev == Evidence(mean_logprob=-1.0, min_logprob=-1.5, first_margin=2.0, tokens=2)
    assert (
        first_line_evidence(
            GenerationResult(tokens=[0], token_logprobs=[-1.0], token_margins=[0.0], forced_tokens=1), pieces
        )
        is None
    )


def test_uncalibrated_confidence_is_the_geometric_mean_probability() -> None:
    ev = Evidence(mean_logprob=math.log(0.25), min_logprob=-3.0, first_margin=1.0, tokens=4)
    gate = ConfidenceGate()
    assert gate.confidence(ev) == pytest.approx(0.25)
    assert gate.passes(0.25, None) and gate.passes(0.01, 0.0)  # threshold 0: everything shows
    assert not gate.passes(0.25, 0.3)  # the user's setting wins


def test_logistic_fit_recovers_known_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 2)) * [2.0, 0.5] + [1.0, 0.2]
    true_w, true_b = np.array([1.5, -2.0]), -0.7
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(x @ true_w + true_b)))).astype(float)
    w, b = fit_logistic(x, y, l2=1e-6)
    assert np.allclose(w, true_w, atol=0.08) and b == pytest.approx(true_b, abs=0.2)


def test_precision_coverage_by_hand() -> None:
    conf = np.array([0.9, 0.8, 0.3, 0.2])
    right = np.array([True, False, True, False])
    assert precision_coverage(conf, right, [0.0, 0.5, 0.85]) == [
        {"threshold": 0.0, "coverage": 1.0, "precision": 0.5, "shown": 4},
        {"threshold": 0.5, "coverage": 0.5, "precision": 0.5, "shown": 2},
        {"threshold": 0.85, "coverage": 0.25, "precision": 1.0, "shown": 1},
    ]


def test_calibrated_gate_raises_precision() -> None:
    """Confident suggestions are right more often: the gate keeps those and its precision beats the ungated one."""
    rng = np.random.default_rng(1)
    ev, right = [], []
    for _ in range(2000):
        m = rng.normal(-2.0, 1.0)
        ev.append(Evidence(m, m - abs(rng.normal()), abs(rng.normal(2)), int(rng.integers(1, 12))))
        right.append(bool(rng.random() < 1 / (1 + math.exp(-(3 * m + 4)))))
    gate = calibrate(ev, right)
    shown = [r for e, r in zip(ev, right) if gate.passes(gate.confidence(e), None)]
    assert len(shown) >= 0.1 * len(ev)
    assert np.mean(shown) >= 2 * np.mean(right)
    with pytest.raises(ValueError):
        calibrate(ev[:10], [False] * 10)  # nothing right: nothing to learn


def test_calibration_lives_in_the_cache_then_beside_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(100_000))
    assert not load_gate(model).calibrated
    ident = model_identity(model)
    shipped = ConfidenceGate((1.0, 0.0, 0.0, 0.0), 0.5, 0.2, ident)
    save_gate(model, shipped, beside(model))
    assert load_gate(model) == shipped
    mine = ConfidenceGate((2.0, 0.0, 0.0, 0.0), 0.0, 0.4, ident)
    where = save_gate(model, mine)
    assert where.is_relative_to(tmp_path / "cache") and load_gate(model) == mine  # the user's own comes first
    model.write_bytes(b"GGUF" + bytes(100_001))  # another file: neither calibration applies
    assert not load_gate(model).calibrated
    beside(model).write_text(json.dumps({"features": ["other"]}))
    assert not load_gate(model).calibrated  # a calibration of other features is ignored, not used


def test_shipped_model_carries_a_calibration() -> None:
    from pyserver.models import default_model_path

    path = default_model_path()
    assert path is not None
    gate = load_gate(path)
    assert gate.calibrated and 0 < gate.threshold < 1
