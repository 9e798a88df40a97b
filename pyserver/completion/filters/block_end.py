"""At an empty line a suggestion is a block: it ends at the first line indented less than the cursor's line, or at
two blank lines in a row."""

from __future__ import annotations

from pyserver.completion.filters.context import CursorContext, indent_of


def block_end(suggestion: str, ctx: CursorContext) -> str:
    lines = suggestion.split("\n")
    if len(lines) == 1:
        return suggestion
    start = indent_of(ctx.line_prefix) if not ctx.line_prefix.strip() else indent_of(ctx.line_prefix + lines[0])
    kept = [lines[0]]
    blank_run = 0
    for line in lines[1:]:
        if not line.strip():
            blank_run += 1
            if blank_run >= 2:
                break
            kept.append(line)
            continue
        blank_run = 0
        if indent_of(line) < start:
            break
        kept.append(line)
    while len(kept) > 1 and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)
