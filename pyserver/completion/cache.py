"""An LRU of recent suggestions with type-ahead forwarding: while the user types characters that match a shown
suggestion, the rest of it is served from here instead of asking the model again."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

TAIL = 2000  # characters of prefix kept to recognise the same spot
MAX_TYPED = 50  # forward over at most this many typed characters (as Tabby does)


@dataclass(frozen=True)
class _Entry:
    prefix_len: int
    prefix_tail: str
    suffix_head: str
    text: str


class SuggestionCache:
    def __init__(self, capacity: int = 250) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int, str, str], _Entry] = OrderedDict()

    def put(self, uri: str, prefix: str, suffix: str, text: str) -> None:
        if not text:
            return
        e = _Entry(len(prefix), prefix[-TAIL:], suffix[:TAIL], text)
        key = (uri, e.prefix_len, e.prefix_tail[-64:], e.suffix_head[:64])
        self._entries[key] = e
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, uri: str, prefix: str, suffix: str) -> str | None:
        """The remaining suggestion for this spot, or None."""
        head = suffix[:TAIL]
        for key in reversed(self._entries):
            if key[0] != uri:
                continue
            e = self._entries[key]
            typed_n = len(prefix) - e.prefix_len
            if not 0 <= typed_n <= MAX_TYPED or e.suffix_head != head:
                continue
            start = e.prefix_len - len(e.prefix_tail)
            if prefix[start : e.prefix_len] != e.prefix_tail:
                continue
            typed = prefix[e.prefix_len :]
            if e.text.startswith(typed) and len(e.text) > len(typed):
                self._entries.move_to_end(key)
                return e.text[len(typed) :]
        return None
