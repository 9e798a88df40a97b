"""How much of the code before the cursor the completion prompt shows, measured in the model's tokens.

The window always ends at the start of the cursor's line (the typed part of the line is the generation's forced
start, see `prompt.split_at_line_start`) and holds between 3/4 and all of the tokens the budget gives the prefix,
or the whole text before the line when that is shorter. Its start is a line start that stays put while it keeps
the window in that band, so consecutive keystrokes along a line give the same prompt and the KV cache serves all of
it; moving to the next lines only appends to it, until the window outgrows the budget and its start moves on by a
quarter of it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from pyserver.engine.tokenizer import Tokenizer

# The window keeps its start while it holds at least this share of the prefix's token budget.
MIN_SHARE = 0.75
# Characters per token assumed when cutting a tail to tokenize: generous, so the tail nearly always holds the budget.
MAX_CHARS_PER_TOKEN = 8
REMEMBERED_DOCUMENTS = 32


@dataclass(frozen=True)
class Window:
    start: int  # offset into the text before the cursor's line where the window starts (a line start, or 0)
    ids: list[int]  # the window's tokens


def _line_start_at_or_before(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1 if pos > 0 else 0


def _tail_ids(tok: Tokenizer, text: str, start: int) -> list[int]:
    return tok.encode(text[start:]) if start < len(text) else []


def choose_start(tok: Tokenizer, text: str, share: int) -> Window:
    """The start (a line start where possible) of the longest window of `text`'s end that fits `share` tokens,
    moved forward to hold about MIN_SHARE of it, leaving room to grow line by line before it must move again."""
    if share <= 0 or not text:
        return Window(len(text), [])
    lo = 0
    while True:
        cut = max(0, len(text) - MAX_CHARS_PER_TOKEN * share * (1 << lo))
        cut = _line_start_at_or_before(text, cut)
        enc = tok.hf.encode(text[cut:], add_special_tokens=False)
        if len(enc.ids) >= share or cut == 0:
            break
        lo += 1
    if cut == 0 and len(enc.ids) <= share:
        return Window(0, list(enc.ids))
    target = max(1, int(share * MIN_SHARE + 0.999))
    # Where the last `target` tokens begin; the window starts at the line start at or before it (more tokens).
    pos = cut + enc.offsets[len(enc.ids) - target][0]
    start = _line_start_at_or_before(text, pos)
    ids = _tail_ids(tok, text, start)
    if len(ids) > share:  # a long line: start mid-line, at the token boundary that leaves `share` tokens
        start = cut + enc.offsets[len(enc.ids) - share][0]
        ids = _tail_ids(tok, text, start)
        ids = ids[max(0, len(ids) - share) :]  # re-tokenizing from a new start can merge differently
    return Window(start, ids)


class PrefixWindows:
    """The window start per document, kept while it stays valid (see the module's docstring)."""

    def __init__(self) -> None:
        self._starts: OrderedDict[str, int] = OrderedDict()

    def window(self, key: str, tok: Tokenizer, text: str, share: int) -> Window:
        """The window over `text` (the code before the cursor's line) for the document `key`."""
        start = self._starts.get(key)
        if start is not None and start <= len(text) and (start == 0 or text[start - 1] == "\n"):
            # (a start that is not a line start, or no longer one after an edit above it, is chosen anew)
            ids = _tail_ids(tok, text, start)
            whole = start == 0
            if len(ids) <= share and (len(ids) >= share * MIN_SHARE or whole):
                self._remember(key, start)
                return Window(start, ids)
        w = choose_start(tok, text, share)
        self._remember(key, w.start)
        return w

    def _remember(self, key: str, start: int) -> None:
        self._starts[key] = start
        self._starts.move_to_end(key)
        while len(self._starts) > REMEMBERED_DOCUMENTS:
            self._starts.popitem(last=False)


def layout(tok: Tokenizer, prefix_ids: Sequence[int], suffix_ids: Sequence[int], order: str = "psm") -> list[int]:
    """The fill-in-the-middle prompt in the model's trained order: PSM `[PRE] prefix [SUF] suffix [MID]`, or SPM
    `[PRE] [SUF] suffix [MID] prefix` (the variant where the prefix runs on into the middle; the suffix leads, so
    the cache keeps it while the prefix grows). Models without FIM tokens get the prefix alone."""
    sp = tok.special
    if not sp.has_fim:
        return list(prefix_ids)
    assert sp.fim_prefix is not None and sp.fim_suffix is not None and sp.fim_middle is not None
    if order == "spm":
        return [sp.fim_prefix, sp.fim_suffix, *suffix_ids, sp.fim_middle, *prefix_ids]
    return [sp.fim_prefix, *prefix_ids, sp.fim_suffix, *suffix_ids, sp.fim_middle]
