"""A token n-gram language model with interpolated Witten-Bell back-off: the honest floor the shipped model must
beat. Counts live in sorted numpy arrays of packed n-gram keys, so fitting millions of tokens takes seconds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_BITS = 13  # per token id; vocabularies up to 8191 plus the boundary symbol


class TokenNgram:
    def __init__(self, vocab: int, order: int = 4) -> None:
        if vocab + 1 >= 1 << _BITS or order * _BITS > 62:
            raise ValueError("vocabulary too large for the packed keys")
        self.vocab, self.order = vocab, order
        self.boundary = vocab  # pads the start of every stream so no context crosses files
        self._keys: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._ctx: list[np.ndarray] = []
        self._ctx_total: list[np.ndarray] = []
        self._ctx_types: list[np.ndarray] = []
        self.unigram = np.ones(vocab, np.float64)

    def fit(self, streams: Sequence[np.ndarray]) -> TokenNgram:
        pad = np.full(self.order - 1, self.boundary, np.int64)
        seqs = [np.concatenate([pad, np.asarray(s, np.int64)]) for s in streams if len(s)]
        uni = np.bincount(np.concatenate([s[self.order - 1 :] for s in seqs]), minlength=self.vocab)[: self.vocab]
        self.unigram = (uni + 1.0) / (uni.sum() + self.vocab)  # add-one: every token has some mass
        for n in range(2, self.order + 1):
            keys = np.concatenate([self._pack(s, n) for s in seqs])
            k, c = np.unique(keys, return_counts=True)
            ctx, first = np.unique(k >> _BITS, return_index=True)
            total = np.add.reduceat(c, first)
            types = np.diff(np.append(first, k.size))
            self._keys.append(k)
            self._counts.append(c)
            self._ctx.append(ctx)
            self._ctx_total.append(total)
            self._ctx_types.append(types)
        return self

    def _pack(self, s: np.ndarray, n: int) -> np.ndarray:
        """Keys of the n-grams ending at every real token of s (s starts with order-1 boundary pads)."""
        start = self.order - n
        m = s.size - (self.order - 1)
        key = np.zeros(m, np.int64)
        for j in range(n):
            key = (key << _BITS) | s[start + j : start + j + m]
        return key

    def distribution(self, history: Sequence[int]) -> np.ndarray:
        """P(next | last order-1 tokens), a proper distribution over the vocabulary."""
        h = [self.boundary] * (self.order - 1) + [int(t) for t in history[-(self.order - 1) :]]
        p = self.unigram.copy()
        for n in range(2, self.order + 1):
            ctx = 0
            for t in h[len(h) - (n - 1) :]:
                ctx = (ctx << _BITS) | t
            i = int(np.searchsorted(self._ctx[n - 2], ctx))
            if i >= self._ctx[n - 2].size or self._ctx[n - 2][i] != ctx:
                continue  # unseen context: keep the lower order
            total, types = float(self._ctx_total[n - 2][i]), float(self._ctx_types[n - 2][i])
            keys = self._keys[n - 2]
            lo = int(np.searchsorted(keys, ctx << _BITS))
            hi = int(np.searchsorted(keys, (ctx + 1) << _BITS))
            lam = total / (total + types)
            p *= 1.0 - lam
            p[keys[lo:hi] & ((1 << _BITS) - 1)] += lam * self._counts[n - 2][lo:hi] / total
        return p
