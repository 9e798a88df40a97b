"""A cursor inside a statement gets one line: multi-line suggestions there are what users notice and reject."""

from __future__ import annotations

from pyserver.completion.filters.context import CursorContext


def single_line(suggestion: str, ctx: CursorContext) -> str:
    if ctx.mid_line:
        return suggestion.split("\n", 1)[0]
    return suggestion
