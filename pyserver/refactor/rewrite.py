"""Rewrite the selection following an instruction: the instruction becomes a comment before the gap and the model
fills the gap between the code before and after the selection."""

from __future__ import annotations

from collections.abc import Callable

from pyserver.completion.filters.block_end import block_end
from pyserver.completion.filters.context import CursorContext
from pyserver.refactor import TextEdit
from pyserver.refactor.verify import applied, degenerate, keeps_signatures, parses, parses_as
from pyserver.refactor.writer import Writer


def rewrite_edit(
    writer: Writer,
    text: str,
    start: int,
    end: int,
    instruction: str,
    max_tokens: int,
    should_stop: Callable[[], bool],
    context: str = "",
    language: str | None = "python",
) -> TextEdit | str | None:
    """The edit, a reason string (nothing to do, or the model's code fails verification: it must parse, with `ast`
    for Python, tree-sitter for the index's other languages; Python must keep every function's signature), or None
    when stopped. `language`: the index's name for it (pyserver/index/files.py), None when unknown."""
    if start >= end:
        return "select the code to rewrite"
    line_start = text.rfind("\n", 0, start) + 1
    first = text[line_start:end].split("\n")[0]
    indent = first[: len(first) - len(first.lstrip())]
    original = text[start:end]
    prefix = (
        text[:line_start]
        + f"{indent}# {instruction.strip()}\n{indent}# Original:\n"
        + "".join(f"{indent}#   {ln.strip()}\n" for ln in original.split("\n") if ln.strip())
        + indent
    )
    suffix = text[end:]
    out = writer.write(context + prefix, suffix, max_tokens, [], should_stop)
    if out is None:
        return None
    new = block_end(out, CursorContext(prefix, suffix)).rstrip()
    problem = degenerate(new, original)
    if problem:
        return problem
    edit = TextEdit(line_start, end, indent + new.lstrip() + ("\n" if original.endswith("\n") else ""))
    after = applied(text, edit)
    if language != "python":
        return parses_as(after, language) or edit
    return parses(after) or keeps_signatures(text, after) or edit
