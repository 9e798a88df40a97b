"""Add a docstring to the function at the cursor, or update the one it has (two commands: an existing docstring is
replaced only when asked to update it). Fill-in-the-middle between the quotes; the result is verified (verify.py)
before it is offered."""

from __future__ import annotations

from collections.abc import Callable

from pyserver.refactor import TextEdit
from pyserver.refactor.common import function_at, line_offsets
from pyserver.refactor.verify import applied, docstring_problem, keeps_signatures, parses
from pyserver.refactor.writer import Writer

MODES = ("add", "update")


def docstring_edit(
    writer: Writer,
    text: str,
    line: int,
    max_tokens: int,
    should_stop: Callable[[], bool],
    context: str = "",
    mode: str = "add",
) -> TextEdit | str | None:
    """The edit, a reason string when there is nothing to do (or the model's text fails verification), or None
    when stopped. `context`: code from other files (the workspace index's), put before the document in the prompt.
    `mode`: "add" (refused when the function has a docstring) or "update" (refused when it has none)."""
    fn = function_at(text, line)
    if fn is None:
        return "no function at the cursor (or the file does not parse)"
    if mode == "add" and fn.docstring is not None:
        return f"{fn.name} already has a docstring (Update Docstring replaces it)"
    if mode == "update" and fn.docstring is None:
        return f"{fn.name} has no docstring to update (Add Docstring writes one)"
    offs = line_offsets(text)
    ind = fn.body_indent
    if fn.docstring is not None:  # replace the existing docstring's lines
        start = offs[fn.docstring[0] - 1]
        end = offs[fn.docstring[1]] if fn.docstring[1] < len(offs) else len(text)
    else:  # insert after the header
        start = end = offs[fn.header_end_line] if fn.header_end_line < len(offs) else len(text)
    out = writer.write(context + text[:start] + ind + '"""', '"""\n' + text[end:], max_tokens, ['"""'], should_stop)
    if out is None:
        return None
    body = out.strip()
    problem = docstring_problem(body, fn.name)
    if problem:
        return problem
    lines = body.split("\n")
    doc = ind + '"""' + lines[0].strip()
    if len(lines) > 1:
        doc += "\n" + "\n".join((ind + ln.strip()) if ln.strip() else "" for ln in lines[1:]) + "\n" + ind
    doc += '"""\n'
    edit = TextEdit(start, end, doc)
    after = applied(text, edit)
    return parses(after) or keeps_signatures(text, after) or edit
