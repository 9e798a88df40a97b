"""Plain numpy references for the introspection figures: written from the definitions (rows of trits, L1 distances
over all pairs, columns' signs), never from pyserver/inspect's code, on models small enough for O(n^2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pyserver.engine.config import LINEAR_NAMES


def pairwise_l1(c: np.ndarray) -> np.ndarray:
    """|a - b| summed over the columns, for every pair of rows: the signatures' Hamming distances."""
    x = c.astype(np.int16)
    d: np.ndarray = np.abs(x[:, None, :] - x[None, :, :]).sum(axis=2)
    return d


def nearest_other(d: np.ndarray) -> np.ndarray:
    d = d.astype(np.float64).copy()
    np.fill_diagonal(d, np.inf)
    out: np.ndarray = d.min(axis=1)
    return out


def hist(values: np.ndarray, bins: int) -> list[float]:
    return [float(v) for v in np.histogram(np.clip(values, 0, 1), bins=bins, range=(0.0, 1.0))[0]]


def binned_means(values: np.ndarray, bins: int) -> np.ndarray:
    """Mean of each of `bins` equal runs of values (element i in run i * bins // n)."""
    n = len(values)
    which = np.arange(n) * bins // n
    return np.array([values[which == b].mean() for b in range(min(bins, n))])


@dataclass
class TensorRef:
    """Every number the report shows for one projection, from its trits and stored scales."""

    codes: np.ndarray
    scales: np.ndarray  # as stored (f16-rounded block scales, or the one tensor scale)
    extra: float

    def __post_init__(self) -> None:
        c = self.codes
        self.rows, self.cols = c.shape
        self.bits = 2 * self.cols
        self.minus, self.zero, self.plus = (int((c == v).sum()) for v in (-1, 0, 1))
        self.density = (c != 0).sum(axis=1) / self.cols
        self.d = pairwise_l1(c)
        iu = np.triu_indices(self.rows, 1)
        self.mean_distance = float(self.d[iu].mean())
        f = np.array([self.minus, self.plus]) / c.size
        self.independent = float(self.cols * 2 * (f * (1 - f)).sum())
        self.nearest = nearest_other(self.d) / self.bits
        blocks = c[:, : self.cols // 128 * 128].reshape(self.rows, -1, 128)
        self.zero_blocks = int((blocks == 0).all(axis=2).sum())
        self.n_blocks = blocks.shape[0] * blocks.shape[1]
        p, m = (c > 0).sum(axis=0), (c < 0).sum(axis=0)
        self.nonzero_cols = p + m
        self.agreement = np.abs(p - m) / np.maximum(1, p + m)

    def pairs_within(self, fraction: float) -> int:
        r = int(np.floor(fraction * self.bits))
        return int((self.d[np.triu_indices(self.rows, 1)] <= r).sum())

    @property
    def consensus(self) -> int:
        return int(((self.agreement >= 0.5) & (self.nonzero_cols > 0)).sum())

    @property
    def effective_scale(self) -> float:
        return float(self.scales.astype(np.float64).mean() * self.extra)

    @property
    def scale_spread(self) -> float:
        s = self.scales.astype(np.float64)
        return float(s.std() / s.mean())

    def row_profile(self) -> np.ndarray:
        return binned_means(self.density, 32)

    def col_profile(self) -> np.ndarray:
        return binned_means((self.codes != 0).mean(axis=0), 32)


def layer_similarity(codes: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Mean over projections of the mean similarity 1 - L1 / (2 cols) of the same 64 evenly spaced rows."""
    n = len(codes)
    out = np.zeros((n, n))
    for kind in LINEAR_NAMES:
        rows, cols = codes[0][kind].shape
        idx = np.arange(min(64, rows)) * rows // min(64, rows)
        for a in range(n):
            for b in range(n):
                diff = np.abs(codes[a][kind][idx].astype(np.int16) - codes[b][kind][idx]).sum(axis=1)
                out[a, b] += 1 - (diff / (2 * cols)).mean()
    return out / len(LINEAR_NAMES)


_SVG = re.compile(r'<svg class="figure"[^>]*data-figure="([^"]+)"(.*?)</svg>', re.S)


def figures(html: str) -> dict[str, str]:
    """Each figure's markup by its id."""
    found = _SVG.findall(html)
    out = dict(found)
    assert len(out) == len(found), "figure ids are unique"
    return out


def values(markup: str, attr: str = "data-value") -> np.ndarray:
    return np.array([float(v) for v in re.findall(rf'{attr}="([^"]+)"', markup)])


def close(got: np.ndarray, want: object) -> bool:
    """Equal to the six significant digits the figures carry."""
    w = np.asarray(want, dtype=np.float64).ravel()
    return got.shape == w.shape and bool(np.allclose(got, w, rtol=1e-5, atol=1e-9, equal_nan=True))
