"""The exact bytes each token stands for, and the tokens that agree with a given text: what constrained decoding
needs to make a generation start with text the user has already typed ("token healing").

A prompt that ends inside what would be one token (`return ` before ` side`, indentation before `return`) is a
token sequence the model never saw in training. Instead the prompt stops earlier and the generation is constrained
to tokens that agree with the typed text until it is covered, so the model picks its own tokenization of it.
"""

from __future__ import annotations

import bisect
import re
import weakref
from collections.abc import Sequence

import numpy as np

from pyserver.engine.tokenizer import Tokenizer


def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, inverted (character -> byte)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    table: dict[str, int] = {chr(b): b for b in printable}
    n = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + n)] = b
            n += 1
    return table


_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


SPM_SPACE = "\u2581".encode()


def is_byte_level(tok: Tokenizer) -> bool:
    return type(tok.hf.decoder).__name__ == "ByteLevel"


def token_byte_strings(tok: Tokenizer) -> list[bytes]:
    """Bytes of every token id (b"" for control tokens and pieces that stand for no text). SentencePiece pieces
    keep their U+2581 space marker, which may also be spelled by byte tokens: `TokenMatcher` maps it."""
    hf = tok.hf
    byte_level = is_byte_level(tok)
    inv = _byte_level_table() if byte_level else {}
    out: list[bytes] = []
    for i in range(tok.vocab_size):
        piece = hf.id_to_token(i)
        if piece is None or i in tok.control_ids:
            out.append(b"")
        elif byte_level:
            try:
                out.append(bytes(inv[c] for c in piece))
            except KeyError:  # an added token spelled in plain text
                out.append(piece.encode("utf-8"))
        else:
            m = _BYTE_TOKEN.fullmatch(piece)
            out.append(bytes([int(m.group(1), 16)]) if m else piece.encode("utf-8"))
    return out


def _after_prefix(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string that starts with prefix (prefix not all 0xff)."""
    p = prefix.rstrip(b"\xff")
    return p[:-1] + bytes([p[-1] + 1])


class TokenMatcher:
    """Finds the tokens whose bytes agree with a text: either a prefix of it, or starting with all of it.

    Matching happens on the vocabulary's own spelling: `normalize` turns text into it (spaces become U+2581 for
    SentencePiece, given as `space_marker`), `text_of` turns tokens back into text."""

    def __init__(self, pieces: Sequence[bytes], space_marker: bytes | None = None) -> None:
        self.pieces = list(pieces)
        self.space_marker = space_marker
        self._exact: dict[bytes, list[int]] = {}
        for i, p in enumerate(self.pieces):
            if p:
                self._exact.setdefault(p, []).append(i)
        order = sorted((p, i) for i, p in enumerate(self.pieces) if p)
        self._sorted = [p for p, _ in order]
        self._ids = np.array([i for _, i in order], dtype=np.int64)

    def normalize(self, text: str) -> bytes:
        b = text.encode("utf-8")
        return b.replace(b" ", self.space_marker) if self.space_marker else b

    def text_of(self, ids: Sequence[int]) -> bytes:
        b = b"".join(self.pieces[i] for i in ids)
        return b.replace(self.space_marker, b" ") if self.space_marker else b

    def agreeing(self, rest: bytes) -> np.ndarray:
        """Ids of tokens t with rest.startswith(t) or t.startswith(rest), for a non-empty rest."""
        if not rest:
            raise ValueError("agreeing() needs a non-empty text")
        ids: list[int] = []
        for k in range(1, len(rest)):
            ids.extend(self._exact.get(rest[:k], ()))
        lo = bisect.bisect_left(self._sorted, rest)
        hi = bisect.bisect_left(self._sorted, _after_prefix(rest)) if rest.rstrip(b"\xff") else len(self._sorted)
        return np.concatenate([np.asarray(ids, dtype=np.int64), self._ids[lo:hi]])


_MATCHERS: weakref.WeakKeyDictionary[Tokenizer, TokenMatcher] = weakref.WeakKeyDictionary()


def matcher_for(tok: Tokenizer) -> TokenMatcher:
    """The tokenizer's matcher, built on first use (a fraction of a second for a 128k vocabulary) and kept."""
    m = _MATCHERS.get(tok)
    if m is None:
        m = _MATCHERS[tok] = TokenMatcher(token_byte_strings(tok), None if is_byte_level(tok) else SPM_SPACE)
    return m
