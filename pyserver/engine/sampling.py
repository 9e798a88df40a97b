"""Next-token choice from logits: greedy, temperature, top-k, top-p and a repetition penalty."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplerConfig:
    temperature: float = 0.0  # 0: greedy
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    repetition_penalty: float = 1.0  # 1: off; llama.cpp's rule: positive logits divided, negative multiplied
    repetition_window: int = 64  # how many recent tokens the penalty looks at
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ValueError(f"invalid sampler settings: {self}")


class Sampler:
    def __init__(self, config: SamplerConfig | None = None) -> None:
        self.config = config or SamplerConfig()
        self.rng = np.random.default_rng(self.config.seed)

    def penalize(self, logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        c = self.config
        if c.repetition_penalty == 1.0 or not history:
            return logits
        out = logits.astype(np.float32, copy=True)
        recent = np.unique(np.asarray(history[-c.repetition_window :], dtype=np.int64))
        vals = out[recent]
        out[recent] = np.where(vals > 0, vals / c.repetition_penalty, vals * c.repetition_penalty)
        return out

    def __call__(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        c = self.config
        z = self.penalize(np.asarray(logits, dtype=np.float32), history)
        if c.temperature == 0.0:
            return int(np.argmax(z))
        z = z.astype(np.float64) / c.temperature
        if c.top_k and c.top_k < z.size:
            kth = np.partition(z, -c.top_k)[-c.top_k]
            z = np.where(z >= kth, z, -np.inf)
        p = np.exp(z - z.max())
        p /= p.sum()
        if c.top_p < 1.0:
            order = np.argsort(-p, kind="stable")
            cum = np.cumsum(p[order])
            keep = order[: int(np.searchsorted(cum, c.top_p) + 1)]  # the smallest set reaching top_p
            mask = np.zeros_like(p, dtype=bool)
            mask[keep] = True
            p = np.where(mask, p, 0.0)
            p /= p.sum()
        return int(self.rng.choice(p.size, p=p))
