"""Balances brackets against the document: a suggestion may close what the line opened, but not what the text after
the cursor already closes, and never a bracket nobody opened."""

from __future__ import annotations

from pyserver.completion.filters.context import CursorContext

PAIRS = {")": "(", "]": "[", "}": "{"}
OPEN = set(PAIRS.values())


def open_stack(text: str) -> list[str]:
    """Brackets left open at the end of text, ignoring string contents roughly (quotes toggle)."""
    stack: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in OPEN:
            stack.append(ch)
        elif ch in PAIRS and stack and stack[-1] == PAIRS[ch]:
            stack.pop()
    return stack


def balance_brackets(suggestion: str, ctx: CursorContext) -> str:
    # What the cursor's statement has open, minus what the rest of the line will close.
    still_open = open_stack(ctx.line_prefix if ctx.mid_line else "")
    for ch in ctx.line_suffix:
        if ch in PAIRS and still_open and still_open[-1] == PAIRS[ch]:
            still_open.pop()
    quote = ""
    stack = list(still_open)
    for i, ch in enumerate(suggestion):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in OPEN:
            stack.append(ch)
        elif ch in PAIRS:
            if not stack or stack[-1] != PAIRS[ch]:
                return suggestion[:i].rstrip()  # closes what is not open here, or what the suffix closes
            stack.pop()
    return suggestion
