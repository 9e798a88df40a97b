"""Clean-up rules applied to a raw model suggestion, one small filter per file (see `apply_filters` for the order).

Each filter takes the suggestion and the `CursorContext` and returns the suggestion to keep ("" drops it).
"""

from __future__ import annotations

from collections.abc import Callable

from pyserver.completion.filters.block_end import block_end
from pyserver.completion.filters.brackets import balance_brackets
from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.empty import drop_empty
from pyserver.completion.filters.repetition import cut_repetition
from pyserver.completion.filters.single_line import single_line
from pyserver.completion.filters.suffix_overlap import no_suffix_repeat
from pyserver.completion.filters.trailing_ws import strip_trailing_whitespace

Filter = Callable[[str, CursorContext], str]

PIPELINE: tuple[Filter, ...] = (
    single_line,
    block_end,
    cut_repetition,
    no_suffix_repeat,
    balance_brackets,
    strip_trailing_whitespace,
    drop_empty,
)


def apply_filters(suggestion: str, ctx: CursorContext, max_lines: int | None = None) -> str:
    return filter_suggestion(suggestion, ctx, max_lines)[0]


def filter_suggestion(suggestion: str, ctx: CursorContext, max_lines: int | None = None) -> tuple[str, str | None]:
    """(the suggestion to keep, the name of the filter that removed it, or None when something is kept)."""
    if not suggestion:
        return "", None
    for f in PIPELINE:
        suggestion = f(suggestion, ctx)
        if not suggestion:
            return "", f.__name__
    if max_lines is not None:  # the cut may end at a blank line: it goes too
        suggestion = "\n".join(suggestion.split("\n")[:max_lines]).rstrip()
    return suggestion, None


__all__ = ["PIPELINE", "CursorContext", "apply_filters", "filter_suggestion"]
