"""Add a docstring to the function at the cursor, or update the one it has (two commands: an existing docstring is
replaced only when asked to update it). Fill-in-the-middle between the quotes; the result is verified (verify.py)
before it is offered, and an update only when the verifier scores the new docstring no lower than the old one
(`docstring_score`: how much of what it says the code backs)."""

from __future__ import annotations

import ast
from collections.abc import Callable

from pyserver.refactor import TextEdit
from pyserver.refactor.common import function_at, line_offsets
from pyserver.refactor.verify import applied, docstring_problem, docstring_score, keeps_signatures, parses
from pyserver.refactor.writer import Writer

MODES = ("add", "update")


def docstring_precheck(text: str, line: int, mode: str) -> str | None:
    """Why there is nothing to do at `line` (no function there; "add" on one that has a docstring, "update" on one
    that has none), or None: checked before the model is asked, and before the capability gate."""
    fn = function_at(text, line)
    if fn is None:
        return "no function at the cursor (or the file does not parse)"
    if mode == "add" and fn.docstring is not None:
        return f"{fn.name} already has a docstring (Update Docstring replaces it)"
    if mode == "update" and fn.docstring is None:
        return f"{fn.name} has no docstring to update (Add Docstring writes one)"
    return None


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
    problem = docstring_precheck(text, line, mode)
    if problem:
        return problem
    fn = function_at(text, line)
    assert fn is not None
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
    if fn.docstring is not None:
        source = "\n".join(text.split("\n")[fn.node.lineno - 1 : fn.node.end_lineno])
        old_text = ast.get_docstring(fn.node) or ""
        old, new = docstring_score(old_text, source), docstring_score(body, source)
        if new < old:
            return (
                f"the model's docstring scores lower than the one {fn.name} has ({new:.2f} against {old:.2f}: less "
                "of what it says is in the code); the docstring is kept"
            )
    lines = body.split("\n")
    doc = ind + '"""' + lines[0].strip()
    if len(lines) > 1:
        doc += "\n" + "\n".join((ind + ln.strip()) if ln.strip() else "" for ln in lines[1:]) + "\n" + ind
    doc += '"""\n'
    edit = TextEdit(start, end, doc)
    after = applied(text, edit)
    return parses(after) or keeps_signatures(text, after) or edit
