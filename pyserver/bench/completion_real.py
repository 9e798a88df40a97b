"""`python -m pyserver bench completion --corpus real`: how often suggestions on real code are right, through the
pipeline the server uses (window, prompt, model, filters, confidence gate).

Cursor positions in pinned releases of well-known packages (`real_corpus`), at line starts and mid-line after
punctuation, with the rest of the line removed. Reported per model: first-line exact match, edit similarity
(CodeXGLUE's: 2 x longest common subsequence / total length, of the first line), empty rate, and for the
confidence gate the shown rate and precision of shown suggestions (first line exact, or its first 10 characters
right), with the precision/coverage curve; p50/p95 latency. `--calibrate` fits the gate on the calibration
packages (never measured on) and saves it for the model.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.bench.real_corpus import (
    BENCH_PACKAGES,
    CALIBRATION_PACKAGES,
    Sample,
    corpus,
    sample_positions,
)
from pyserver.completion.calibration import load_gate, model_identity, save_gate
from pyserver.completion.confidence import (
    ConfidenceGate,
    Evidence,
    calibrate,
    precision_coverage,
)
from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.server.settings import ServerSettings

PREFIX_RIGHT_CHARS = 10


def edit_similarity(a: str, b: str) -> float:
    """2 x LCS(a, b) / (len a + len b): 1.0 for equal strings, 0.0 when nothing agrees (rapidfuzz's fuzz.ratio / 100,
    as CodeXGLUE reports it)."""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return 2.0 * prev[-1] / (len(a) + len(b))


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def is_right(suggestion: str, target: str) -> bool:
    """First line exact, or its first 10 characters right (the part a user keeps with accept-word)."""
    s, t = first_line(suggestion), target.rstrip()
    if not s:
        return False
    return s == t or (len(t) >= PREFIX_RIGHT_CHARS and s[:PREFIX_RIGHT_CHARS] == t[:PREFIX_RIGHT_CHARS])


def _run(engine: CompletionPipeline, samples: list[Sample]) -> list[dict[str, Any]]:
    rows = []
    for s in samples:
        t0 = time.perf_counter()
        c = engine.complete(Path(s.file.path).as_posix(), s.document, s.cursor, lambda: False)
        ms = (time.perf_counter() - t0) * 1e3
        if c is None:
            continue
        rows.append(
            {
                "kind": s.kind,
                "target": s.target,
                "candidate": c.candidate,
                "evidence": c.evidence,
                "reason": c.outcome.reason,
                "ms": ms,
                "right": is_right(c.candidate, s.target),
                "exact": bool(c.candidate) and first_line(c.candidate) == s.target.rstrip(),
                "es": edit_similarity(first_line(c.candidate), s.target.rstrip()),
            }
        )
    return rows


def _summary(rows: list[dict[str, Any]], gate: ConfidenceGate) -> dict[str, Any]:
    n = max(1, len(rows))
    lat = np.array([r["ms"] for r in rows]) if rows else np.zeros(1)
    conf = np.array([gate.confidence(r["evidence"]) if r["candidate"] else -1.0 for r in rows])
    right = np.array([r["right"] for r in rows], dtype=bool)
    shown = np.array([bool(r["candidate"]) and gate.passes(c, None) for r, c in zip(rows, conf)], dtype=bool)
    nonempty = np.array([bool(r["candidate"]) for r in rows], dtype=bool)
    ungated_precision = float(right[nonempty].mean()) if nonempty.any() else 0.0
    gated_precision = float(right[shown].mean()) if shown.any() else 0.0
    by_kind = {
        k: {
            "samples": sum(r["kind"] == k for r in rows),
            "exact_match": round(float(np.mean([r["exact"] for r in rows if r["kind"] == k] or [0])), 4),
            "edit_similarity": round(float(np.mean([r["es"] for r in rows if r["kind"] == k] or [0])), 4),
        }
        for k in ("line_start", "mid_line")
    }
    usable = conf >= 0
    thresholds = (
        sorted(set(np.round(np.quantile(conf[usable], np.linspace(0, 0.98, 25)), 4).tolist())) if usable.any() else []
    )
    return {
        "samples": len(rows),
        "exact_match": round(float(np.mean([r["exact"] for r in rows] or [0])), 4),
        "edit_similarity": round(float(np.mean([r["es"] for r in rows] or [0])), 4),
        "empty_rate": round(1 - nonempty.sum() / n, 4),
        # why each answer was empty or shown, as the editor's log and doctor count them (completion/outcome.py)
        # (the pipeline ran with minConfidence 0: the gate's holds are counted here, as the editor would have them)
        "reasons": dict(
            sorted(
                Counter(
                    "gated" if r["reason"] == "shown" and not ok else r["reason"] for r, ok in zip(rows, shown)
                ).items()
            )
        ),
        "by_kind": by_kind,
        "ungated": {"shown_rate": round(nonempty.sum() / n, 4), "precision": round(ungated_precision, 4)},
        "gated": {
            "calibrated": gate.calibrated,
            "threshold": gate.threshold,
            "shown_rate": round(shown.sum() / n, 4),
            "precision": round(gated_precision, 4),
            "precision_gain": round(gated_precision / ungated_precision, 2) if ungated_precision else None,
        },
        "precision_coverage": precision_coverage(conf[usable], right[usable], thresholds),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
    }


def run_real_completion_bench(
    models: list[Path | None],
    samples: int = 300,
    seed: int = 0,
    do_calibrate: bool = False,
    save: bool = False,
    save_beside: bool = False,
    local: Path | None = None,
) -> dict[str, Any]:
    """One report per model; each runs the calibration split first when `do_calibrate`."""
    report: dict[str, Any] = {
        "benchmark": "completion (real code)",
        "corpus": str(local) if local else {"bench": BENCH_PACKAGES, "calibration": CALIBRATION_PACKAGES},
        "samples": samples,
        "seed": seed,
        "models": [],
    }
    bench_samples = sample_positions(corpus("bench", local), samples, seed)
    calib_samples = sample_positions(corpus("calibration", local), samples, seed + 1) if do_calibrate else []
    for path in models:
        host = ModelHost()
        host.load(str(path) if path else "")
        if host.model is None:
            raise RuntimeError(f"no model: {host.error}")
        model_path = Path(str(host.model_path))
        # Everything reaches the benchmark (minConfidence 0); the gate is applied to what it records.
        settings = ServerSettings(min_confidence=0.0, index_enable=False)
        entry: dict[str, Any] = {"model": str(model_path), "parameters_m": round(host.model.config.n_params / 1e6, 1)}
        gate = load_gate(model_path)
        if do_calibrate:
            rows = _run(CompletionPipeline(host, settings.completion), calib_samples)
            usable = [r for r in rows if r["candidate"] and r["evidence"] is not None]
            ev: list[Evidence] = [r["evidence"] for r in usable]
            try:
                gate = calibrate(ev, [r["right"] for r in usable], model=model_identity(model_path))
                entry["calibration"] = {
                    "samples": len(rows),
                    "right": int(sum(r["right"] for r in usable)),
                    "threshold": gate.threshold,
                    "weights": list(gate.weights),
                    "bias": gate.bias,
                    "curve": gate.curve,
                }
                if save or save_beside:
                    where = save_gate(
                        model_path, gate, Path(str(model_path) + ".calibration.json") if save_beside else None
                    )
                    entry["calibration"]["saved"] = str(where)
            except ValueError as exc:
                entry["calibration"] = {"error": str(exc)}
        t0 = time.perf_counter()
        entry |= _summary(_run(CompletionPipeline(host, settings.completion), bench_samples), gate)
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        report["models"].append(entry)
        host.unload()
    report["cpu"] = os.uname().machine
    return report
