"""Never repeat the text after the cursor: trim a suggestion whose end restates the rest of the line, and stop
before a suggested line that is the document's next line."""

from __future__ import annotations

from pyserver.completion.filters.brackets import PAIRS, open_stack
from pyserver.completion.filters.context import CursorContext


def no_suffix_repeat(suggestion: str, ctx: CursorContext) -> str:
    lines = suggestion.split("\n")
    # Whole lines, indentation included (a nested block's `}` is not the function's `}` below it): the lines after
    # the first, and the first too at an empty line.
    following = [ln.rstrip() for ln in ctx.next_lines if ln.strip()][:3]
    for i, line in enumerate(lines):
        if i == 0 and ctx.mid_line:
            continue
        whole = ctx.line_prefix + line if i == 0 else line
        if following and line.strip() and whole.rstrip() == following[0]:
            lines = lines[:i]
            break
    suggestion = "\n".join(lines)
    rest = ctx.line_suffix.strip()
    if rest:
        first, sep, more = suggestion.partition("\n")
        # the longest end of the first line that the rest of the line already starts with, unless that end closes a
        # bracket the suggestion opened (`len(items)` before `)`: its `)` is its own)
        for n in range(min(len(first), len(rest)), 0, -1):
            end = first[-n:]
            if (
                rest.startswith(end.lstrip())
                and end.strip()
                and not (open_stack(first[:-n]) and any(ch in PAIRS for ch in end))
            ):
                first = first[:-n]
                break
        suggestion = first + sep + more
    return suggestion
