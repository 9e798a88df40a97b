"""Training examples: plain next-token windows and fill-in-the-middle (prefix-suffix-middle) examples.

A batch is a pure function of (seed, step), so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from pyserver.bench.stdlib_corpus import SourceFile
from pyserver.engine.gguf_writing import SPECIALS

IGNORE = -100


class Examples:
    def __init__(self, files: list[SourceFile], tok: Tokenizer, seq: int, fim_rate: float = 0.5) -> None:
        self.files, self.tok, self.seq, self.fim_rate = files, tok, seq, fim_rate
        self.eot, self.pre, self.suf, self.mid = (tok.token_to_id(s) for s in SPECIALS[:4])
        ids = [np.asarray(e.ids, np.int32) for e in tok.encode_batch([f.text for f in files], add_special_tokens=False)]
        sep = np.array([self.eot], np.int32)
        self.stream = np.concatenate([x for i in ids for x in (i, sep)])
        lengths = np.array([len(f.text) for f in files], np.float64)
        self.file_p = lengths / lengths.sum()

    @property
    def n_tokens(self) -> int:
        return int(self.stream.size)

    def plain(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        start = int(rng.integers(0, self.stream.size - self.seq - 1))
        w = self.stream[start:start + self.seq + 1].astype(np.int64)
        return w[:-1], w[1:]

    def fim(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        text = self.files[int(rng.choice(len(self.files), p=self.file_p))].text
        start = int(rng.integers(0, max(1, len(text) - 2000)))
        window = text[start:start + 2000]
        if rng.random() < 0.5:  # one whole line as the middle: what single-line completion asks for
            starts = [0] + [i + 1 for i, ch in enumerate(window) if ch == "\n"]
            starts = [s for s in starts if s < len(window) and window[s] != "\n"] or [0]
            a = starts[int(rng.integers(0, len(starts)))]
            b = window.find("\n", a)
            b = len(window) if b < 0 else b
        else:
            a = int(rng.integers(0, len(window) + 1))
            b = min(len(window), a + int(rng.integers(0, 300)))
        enc = lambda s: self.tok.encode(s, add_special_tokens=False).ids  # noqa: E731
        middle = enc(window[a:b])[: self.seq // 2]
        suffix = enc(window[b:])[: self.seq // 4]
        room = self.seq + 1 - 4 - len(middle) - len(suffix)
        prefix = enc(window[:a])[-room:] if room > 0 else []
        toks = [self.pre, *prefix, self.suf, *suffix, self.mid, *middle, self.eot]
        toks = toks[: self.seq + 1]
        x = np.full(self.seq + 1, self.eot, np.int64)
        x[: len(toks)] = toks
        y = x[1:].copy()
        y[len(toks) - 1:] = IGNORE  # padding
        return x[:-1], y

    def batch(self, seed: int, step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((seed, step))
        xs, ys = zip(*(self.fim(rng) if rng.random() < self.fim_rate else self.plain(rng) for _ in range(size)))
        return np.stack(xs), np.stack(ys)
