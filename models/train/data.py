"""Training batches from the pre-tokenized corpus (build/corpus/, written by models/train/corpus.py).

A row is either a plain window of the token stream (files separated by <|endoftext|>) or a fill-in-the-middle
example, in one of two orders:

    PSM  <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle <|endoftext|>
    SPM  <|fim_prefix|> <|fim_suffix|> suffix <|fim_middle|> prefix middle <|endoftext|>

(SPM is the FIM paper's / CodeLlama's variant where prefix and middle are contiguous, so a client can keep the
suffix in its KV cache while the user types.) FIM examples are cut in text, as the completion pipeline cuts its
prompts (pyserver/completion: the prompt ends at the start of the cursor's line, the suffix starts at the end of that
line, with its line break), and each piece is encoded on its own with the tokenizer, as the pipeline encodes it.
Middles are: a whole line (cursor at the line start), a line tail (cursor inside the line: the rest of it), a span of
several whole lines, or a random span of characters. A row shorter than the context is filled up with a plain
window, so nothing is padding.

A batch is a pure function of (seed, step, micro-batch), so a resumed run sees exactly the batches it would have
seen, and worker processes can make batches ahead of the GPU in any order.
"""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.train import tokenizer as T

KINDS = ("line", "line_tail", "lines", "span")
KIND_P = (0.3, 0.3, 0.25, 0.15)


def read_tokens(path: Path) -> np.ndarray:
    with lzma.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype="<u2")


@dataclass
class Split:
    stream: np.ndarray  # uint16 tokens, each file followed by <|endoftext|>
    starts: np.ndarray  # int64 offset of each file in the stream

    @property
    def ends(self) -> np.ndarray:
        return np.append(self.starts[1:], self.stream.size)


def load_split(corpus: Path, name: str) -> Split:
    docs = np.load(corpus / "docs.npz")
    return Split(read_tokens(corpus / f"{name}.u16.xz"), docs[f"{name}_starts"].astype(np.int64))


def corpus_meta(corpus: Path) -> dict:
    return json.loads((corpus / "meta.json").read_text())


@dataclass(frozen=True)
class FimExample:
    prefix: str
    middle: str
    suffix: str
    kind: str


class Batcher:
    def __init__(
        self, split: Split, tokenizer_path: Path, seq: int, fim_rate: float = 0.5, spm_rate: float = 0.5, seed: int = 0
    ) -> None:
        self.split, self.seq, self.fim_rate, self.spm_rate, self.seed = split, seq, fim_rate, spm_rate, seed
        self.tok = T.load(tokenizer_path)
        ids = T.special_ids(self.tok)
        self.eot, self.pre, self.suf, self.mid = (ids[s] for s in T.SPECIALS[:4])
        pieces = T.token_bytes(self.tok)
        self.pieces = pieces
        self.ends_line = np.array([p.endswith(b"\n") for p in pieces], bool)
        lengths = split.ends - split.starts - 1  # without the separator
        self.doc_ok = np.flatnonzero(lengths >= 16)
        w = lengths[self.doc_ok].astype(np.float64)
        self.doc_p = w / w.sum()

    # ---- pieces ----------------------------------------------------------------------------------------------------

    def decode(self, ids: np.ndarray) -> str:
        return b"".join(self.pieces[int(t)] for t in ids).decode("utf-8", errors="replace")

    def window_text(self, rng: np.random.Generator, n_tokens: int) -> str:
        """Text of about n_tokens tokens of one file, starting at a line start."""
        d = int(self.doc_ok[int(rng.choice(self.doc_ok.size, p=self.doc_p))])
        a, b = int(self.split.starts[d]), int(self.split.ends[d]) - 1
        if b - a > n_tokens:
            line_starts = a + 1 + np.flatnonzero(self.ends_line[self.split.stream[a : b - n_tokens]])
            cands = np.concatenate([[a], line_starts])
            a = int(cands[int(rng.integers(0, cands.size))])
            b = min(b, a + n_tokens)
        return self.decode(self.split.stream[a:b])

    @staticmethod
    def cut(text: str, rng: np.random.Generator, kind: str) -> FimExample | None:
        """A prefix / middle / suffix cut of the text, or None when the text has no place for this kind."""
        lines = text.split("\n")
        starts = np.cumsum([0] + [len(ln) + 1 for ln in lines[:-1]])
        nonempty = [i for i, ln in enumerate(lines) if ln.strip()]
        if kind == "span" or not nonempty:
            if len(text) < 2:
                return None
            a = int(rng.integers(0, len(text)))
            b = min(len(text), a + 1 + int(rng.integers(0, 400)))
            return FimExample(text[:a], text[a:b], text[b:], "span")
        i = nonempty[int(rng.integers(0, len(nonempty)))]
        line = lines[i]
        a = int(starts[i])
        if kind == "line_tail":
            indent = len(line) - len(line.lstrip())
            if len(line) - indent < 2:
                return None
            a += int(rng.integers(indent + 1, len(line)))  # at least one character typed, one left
            j = i
        elif kind == "lines":
            j = min(len(lines) - 1, i + int(rng.integers(1, 16)))
        else:
            j = i
        b = int(starts[j]) + len(lines[j])  # the middle ends at the end of its last line; the suffix starts with "\n"
        if b <= a:
            return None
        return FimExample(text[:a], text[a:b], text[b:], kind)

    def fim_tokens(self, ex: FimExample, spm: bool, limit: int) -> list[int]:
        pre, mid, suf = (
            e.ids for e in self.tok.encode_batch([ex.prefix, ex.middle, ex.suffix], add_special_tokens=False)
        )
        return self.layout(pre, mid, suf, spm, limit)

    def layout(self, pre: list[int], mid: list[int], suf: list[int], spm: bool, limit: int) -> list[int]:
        """The FIM token layout within `limit` tokens: the middle first (at most half), then the suffix's start (at
        most a quarter, as the completion prompt gives it) and the prefix's end."""
        mid = mid[: limit // 2]
        room = limit - 4 - len(mid)
        suf = suf[: max(room // 4, room - len(pre))]
        keep = room - len(suf)
        pre = pre[len(pre) - keep :] if keep < len(pre) else pre
        if spm:
            return [self.pre, self.suf, *suf, self.mid, *pre, *mid, self.eot]
        return [self.pre, *pre, self.suf, *suf, self.mid, *mid, self.eot]

    # ---- rows and batches ------------------------------------------------------------------------------------------

    def plain(self, rng: np.random.Generator, n: int) -> np.ndarray:
        start = int(rng.integers(0, self.split.stream.size - n))
        return self.split.stream[start : start + n].astype(np.int64)

    def fim_row(self, rng: np.random.Generator) -> np.ndarray:
        n = self.seq + 1
        for _ in range(8):
            kind = KINDS[int(rng.choice(len(KINDS), p=KIND_P))]
            ex = self.cut(self.window_text(rng, n - 8), rng, kind)
            if ex is not None and ex.middle:
                break
        else:
            return self.plain(rng, n)
        toks = self.fim_tokens(ex, bool(rng.random() < self.spm_rate), n)
        row = np.asarray(toks[:n], np.int64)
        if row.size < n:
            row = np.concatenate([row, self.plain(rng, n - row.size)])
        return row

    def batch(self, step: int, micro: int, size: int) -> np.ndarray:
        """[size, seq + 1] int64 token rows (inputs are row[:-1], targets row[1:])."""
        rng = np.random.default_rng((self.seed, step, micro))
        rows = [
            self.fim_row(rng) if rng.random() < self.fim_rate else self.plain(rng, self.seq + 1) for _ in range(size)
        ]
        return np.stack(rows)


def fim_eval_examples(batcher: Batcher, n: int, seed: int = 4321) -> list[FimExample]:
    """n deterministic single-line FIM examples (cursor at a line start, the line as the middle) from a split."""
    rng = np.random.default_rng(seed)
    out: list[FimExample] = []
    while len(out) < n:
        ex = batcher.cut(batcher.window_text(rng, batcher.seq - 64), rng, "line")
        if ex is not None and ex.middle.strip() and ex.prefix and ex.suffix.strip():
            out.append(ex)
    return out
