"""Escalation: a completion the small model is unsure of (mean entropy of its token distributions above a
threshold) is answered by a larger tier instead, when one is loaded and idle.

The threshold is calibrated on the completion benchmark (`python -m pyserver bench completion` reports the entropy
distribution of the shipped model's suggestions and how often this threshold triggers): set so that about one
suggestion in five escalates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ESCALATION_ENTROPY = 4.6  # nats: the 80th percentile of the shipped model's suggestions (bench completion: 4.64)
TARGET_RATE = 0.2


def should_escalate(mean_entropy: float, threshold: float = ESCALATION_ENTROPY) -> bool:
    return mean_entropy > threshold


def calibrate(entropies: Sequence[float], rate: float = TARGET_RATE) -> float:
    """The threshold above which `rate` of these suggestions lie."""
    if not len(entropies):
        return ESCALATION_ENTROPY
    return float(np.quantile(np.asarray(entropies, np.float64), 1.0 - rate))


def report(entropies: Sequence[float], threshold: float = ESCALATION_ENTROPY) -> dict[str, float]:
    e = np.asarray(entropies, np.float64)
    if not e.size:
        return {}
    return {
        "threshold_nats": threshold,
        "trigger_rate": round(float((e > threshold).mean()), 3),
        "calibrated_threshold_for_rate": round(calibrate(entropies), 3),
        "target_rate": TARGET_RATE,
        "entropy_p50": round(float(np.median(e)), 3),
        "entropy_p90": round(float(np.quantile(e, 0.9)), 3),
    }
