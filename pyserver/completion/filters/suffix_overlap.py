"""Never repeat the text after the cursor: trim a suggestion whose end restates the rest of the line, and stop
before a suggested line that is the document's next line."""

from __future__ import annotations

from pyserver.completion.filters.context import CursorContext


def no_suffix_repeat(suggestion: str, ctx: CursorContext) -> str:
    lines = suggestion.split("\n")
    following = [ln.strip() for ln in ctx.next_lines if ln.strip()][:3]
    for i, line in enumerate(lines[1:], start=1):
        if following and line.strip() and line.strip() == following[0]:
            lines = lines[:i]
            break
    suggestion = "\n".join(lines)
    rest = ctx.line_suffix.strip()
    if rest:
        first, sep, more = suggestion.partition("\n")
        # the longest end of the first line that the rest of the line already starts with
        for n in range(min(len(first), len(rest)), 0, -1):
            if rest.startswith(first[-n:].lstrip()) and first[-n:].strip():
                first = first[:-n]
                break
        suggestion = first + sep + more
    return suggestion
