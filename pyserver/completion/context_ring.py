"""Extra context for completions: a ring of recently opened, edited and saved chunks of other documents, picked by
identifier overlap (Jaccard) with the text around the cursor."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pyserver.index.identifiers import identifiers
from pyserver.index.secrets import redact

CHUNK_LINES = 64
RING_SIZE = 16


def name_set(text: str) -> frozenset[str]:
    """The identifiers of three characters or more (shorter ones match everywhere)."""
    return frozenset(n for n in identifiers(text) if len(n) > 2)


@dataclass(frozen=True)
class Chunk:
    uri: str
    start_line: int
    text: str
    idents: frozenset[str]


class ContextRing:
    def __init__(self, size: int = RING_SIZE) -> None:
        self._ring: deque[Chunk] = deque(maxlen=size)

    def add(self, uri: str, text: str, around_line: int = 0) -> None:
        """Takes the CHUNK_LINES lines around a line of a document (replacing an overlapping chunk of it)."""
        lines = text.split("\n")
        start = max(0, min(around_line - CHUNK_LINES // 2, len(lines) - CHUNK_LINES))
        body = redact("\n".join(lines[start : start + CHUNK_LINES]))  # (it goes into prompts)
        if not body.strip():
            return
        for old in list(self._ring):
            if old.uri == uri and abs(old.start_line - start) < CHUNK_LINES:
                self._ring.remove(old)
        self._ring.append(Chunk(uri, start, body, name_set(body)))

    def pick(self, uri: str, around_cursor: str, budget_chars: int) -> list[Chunk]:
        """Chunks of other documents, most similar first, deduplicated, within budget_chars."""
        want = name_set(around_cursor)
        if not want or budget_chars <= 0:
            return []
        scored = []
        for c in self._ring:
            if c.uri == uri or not c.idents:
                continue
            j = len(want & c.idents) / len(want | c.idents)
            if j > 0:
                scored.append((j, c))
        scored.sort(key=lambda jc: -jc[0])
        out, used, seen = [], 0, set()
        for _, c in scored:
            if c.text in seen or used + len(c.text) > budget_chars:
                continue
            seen.add(c.text)
            out.append(c)
            used += len(c.text)
        return out
