"""The confidence gate: a suggestion is shown only when the model's own probabilities say it is likely right.

Evidence comes from the tokens the model chose for the suggestion's first line (not the re-spelled typed part):
their mean and lowest log-probability, the first token's margin over the runner-up, and the line's length in
tokens. A calibration (`bench completion --corpus real --calibrate`, per model, on files apart from the benchmark's)
fits a logistic model of P(first line right | evidence) and picks the threshold; without one, the confidence is the
geometric mean of the chosen tokens' probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pyserver.engine.generate import GenerationResult

FEATURES = ("mean_logprob", "min_logprob", "first_margin", "log_tokens")
MARGIN_CLIP = 10.0  # nats: a larger margin says nothing more


@dataclass(frozen=True)
class Evidence:
    mean_logprob: float
    min_logprob: float
    first_margin: float
    tokens: int

    def vector(self) -> np.ndarray:
        return np.array(
            [self.mean_logprob, self.min_logprob, min(self.first_margin, MARGIN_CLIP), math.log(self.tokens)],
            dtype=np.float64,
        )


def first_line_evidence(r: GenerationResult, pieces: Sequence[bytes]) -> Evidence | None:
    """Evidence from the freely chosen tokens up to and including the one that ends the first line; None when the
    model chose none."""
    n = 0
    for tok in r.tokens[r.forced_tokens :]:
        n += 1
        if b"\n" in pieces[tok]:
            break
    if n == 0:
        return None
    lp = r.token_logprobs[r.forced_tokens : r.forced_tokens + n]
    return Evidence(
        mean_logprob=sum(lp) / n, min_logprob=min(lp), first_margin=r.token_margins[r.forced_tokens], tokens=n
    )


@dataclass(frozen=True)
class ConfidenceGate:
    """P(right) = sigmoid(weights . evidence + bias) when calibrated; `threshold` is the calibrated cut-off."""

    weights: tuple[float, ...] = ()
    bias: float = 0.0
    threshold: float = 0.0
    model: str = ""  # what it was calibrated for (a model file's identity), for reports
    curve: list[dict[str, float]] = field(default_factory=list, compare=False)  # precision / coverage per threshold

    @property
    def calibrated(self) -> bool:
        return len(self.weights) == len(FEATURES)

    def confidence(self, ev: Evidence | None) -> float:
        if ev is None:
            return 0.0
        if not self.calibrated:
            return math.exp(ev.mean_logprob)
        z = float(np.dot(self.weights, ev.vector())) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def cut(self, min_confidence: float | None) -> float:
        """The threshold in force: `min_confidence` is the user's setting (None: the calibrated threshold, 0 shows
        everything)."""
        return self.threshold if min_confidence is None else min_confidence

    def passes(self, confidence: float, min_confidence: float | None) -> bool:
        return confidence >= self.cut(min_confidence)

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(FEATURES),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "model": self.model,
            "curve": self.curve,
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> ConfidenceGate:
        if d.get("features") != list(FEATURES):
            raise ValueError("calibration made for other features")
        w = d.get("weights")
        if not isinstance(w, list) or len(w) != len(FEATURES):
            raise ValueError("calibration weights missing")
        curve = d.get("curve")
        return cls(
            weights=tuple(float(x) for x in w),
            bias=float(d.get("bias", 0.0)),  # type: ignore[arg-type]
            threshold=float(d.get("threshold", 0.0)),  # type: ignore[arg-type]
            model=str(d.get("model", "")),
            curve=list(curve) if isinstance(curve, list) else [],
        )


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression (Newton's method); features are standardised
    inside and the weights returned for the raw features."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -60, 60)))
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / sd
    return weights, float(w[-1] - (weights * mu).sum())


def precision_coverage(conf: np.ndarray, right: np.ndarray, thresholds: Sequence[float]) -> list[dict[str, float]]:
    """For each threshold: the share of suggestions shown (coverage) and the share of those that are right."""
    out = []
    for t in thresholds:
        shown = conf >= t
        n = int(shown.sum())
        out.append(
            {
                "threshold": round(float(t), 4),
                "coverage": round(n / max(1, len(conf)), 4),
                "precision": round(float(right[shown].mean()) if n else 0.0, 4),
                "shown": n,
            }
        )
    return out


PRECISION_GAIN = 2.0  # the gate aims to double the precision of what is shown


def calibrate(
    evidence: Sequence[Evidence], right: Sequence[bool], model: str = "", min_coverage: float = 0.1
) -> ConfidenceGate:
    """Fits P(right | evidence) and picks the threshold: the lowest (most shown) whose precision reaches
    PRECISION_GAIN x the ungated precision while keeping at least `min_coverage` of the suggestions; when none
    does, the one that maximises precision x sqrt(coverage)."""
    x = np.stack([e.vector() for e in evidence])
    y = np.asarray(right, dtype=np.float64)
    if y.sum() < 3 or y.sum() > len(y) - 3:
        raise ValueError(f"too few right ({int(y.sum())}) or wrong suggestions to calibrate on ({len(y)} in all)")
    weights, bias = fit_logistic(x, y)
    gate = ConfidenceGate(tuple(float(w) for w in weights), bias, 0.0, model)
    conf = np.array([gate.confidence(e) for e in evidence])
    thresholds = sorted(set(np.round(np.quantile(conf, np.linspace(0, 0.98, 50)), 4).tolist()))
    curve = precision_coverage(conf, y.astype(bool), thresholds)
    eligible = [c for c in curve if c["coverage"] >= min_coverage] or curve[:1]
    doubled = [c for c in eligible if c["precision"] >= PRECISION_GAIN * float(y.mean())]
    best = doubled[0] if doubled else max(eligible, key=lambda c: c["precision"] * math.sqrt(c["coverage"]))
    return ConfidenceGate(gate.weights, bias, best["threshold"], model, curve)
