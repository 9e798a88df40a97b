"""Cuts runaway repetition: the same line three times in a row, or a short pattern repeating at the end of a line."""

from __future__ import annotations

import re

from pyserver.completion.filters.context import CursorContext

# A run of 1-12 characters repeated 4+ times at the end of a line, closing punctuation aside ("f(______)",
# ", , , ,", "abcabcabcabc"). Comment rulers ("# -------") are text, not a loop.
_TAIL_REPEAT = re.compile(r"(.{1,12}?)\1{3,}[)\]}:;,]*$")
_RULER = set("-=#*~/ ")


def cut_repetition(suggestion: str, ctx: CursorContext) -> str:
    del ctx
    lines = suggestion.split("\n")
    out: list[str] = []
    for line in lines:
        if len(out) >= 2 and line.strip() and line == out[-1] == out[-2]:
            break
        m = _TAIL_REPEAT.search(line)
        if m and len(m.group(0)) >= 8 and not set(m.group(1)) <= _RULER:
            line = line[: m.start()] + m.group(1)
            out.append(line)
            break  # the model was looping: what follows is not worth showing
        out.append(line)
    while len(out) >= 2 and out[-1] == out[-2] and out[-1].strip():
        out.pop()
    return "\n".join(out)
