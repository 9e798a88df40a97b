"""Drops suggestions with nothing to show."""

from __future__ import annotations

from pyserver.completion.filters.context import CursorContext


def drop_empty(suggestion: str, ctx: CursorContext) -> str:
    del ctx
    return suggestion if suggestion.strip() else ""
