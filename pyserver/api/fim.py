"""Fill-in-the-middle over the API stops at the gap: a small model does not end the middle by itself (it writes the
next function, or the code after the gap, again), so its text is cut where it reaches the code after the gap (the
suffix's first line), where it leaves the block it began in (a line indented less than its first line, or than
the cursor's line when the gap is mid-line), and where it restates the suffix (the editor's own filter)."""

from __future__ import annotations

from pyserver.completion.filters.context import CursorContext, indent_of
from pyserver.completion.filters.suffix_overlap import no_suffix_repeat


def middle_only(text: str, prefix: str, suffix: str) -> str:
    first = next((ln.strip() for ln in suffix.split("\n") if ln.strip()), "")
    line_prefix = prefix[prefix.rfind("\n") + 1 :]
    lines = text.split("\n")
    if line_prefix.strip():
        start = indent_of(line_prefix)
    else:
        start = next((indent_of(line_prefix + ln) for ln in lines if ln.strip()), 0)
    kept: list[str] = []
    for i, line in enumerate(lines):
        if i and line.strip() and (indent_of(line) < start or (first and line.strip() == first)):
            break
        if i == 0 and first and (line_prefix + line).strip() == first:
            break
        kept.append(line)
    while len(kept) > 1 and not kept[-1].strip():
        kept.pop()
    middle = "\n".join(kept)
    return no_suffix_repeat(middle, CursorContext(prefix, suffix)) if middle.strip() else middle
