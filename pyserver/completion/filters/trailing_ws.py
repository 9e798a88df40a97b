"""Strips trailing whitespace from every line and trailing blank lines."""

from __future__ import annotations

from pyserver.completion.filters.context import CursorContext


def strip_trailing_whitespace(suggestion: str, ctx: CursorContext) -> str:
    del ctx
    return "\n".join(line.rstrip() for line in suggestion.split("\n")).rstrip("\n")
