"""Write tests for the function at the cursor into test_<module>.py beside the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from pyserver.completion.filters.block_end import block_end
from pyserver.completion.filters.context import CursorContext
from pyserver.completion.prompt import split_at_line_start
from pyserver.engine import Session
from pyserver.refactor import NewFile
from pyserver.refactor.common import function_at, run
from pyserver.refactor.verify import tests_problem


def new_tests_file(
    session: Session,
    text: str,
    line: int,
    file_name: str,
    max_tokens: int,
    should_stop: Callable[[], bool],
    context: str = "",
) -> NewFile | str | None:
    fn = function_at(text, line)
    if fn is None:
        return "no function at the cursor (or the file does not parse)"
    tok = session.model.tokenizer
    assert tok is not None
    module = PurePosixPath(file_name).stem
    head = f"from {module} import {fn.name}\n\n\ndef test_{fn.name}():\n    "
    source = "\n".join(text.split("\n")[fn.node.lineno - 1 : fn.node.end_lineno])
    text, forced = split_at_line_start(f"{context}# {module}.py\n{source}\n\n\n# test_{module}.py\n{head}")
    prompt = tok.encode(text)[-(session.n_ctx - max_tokens) :]
    out = run(session, prompt, max_tokens, ["\n\n\n"], should_stop, forced)
    if out is None:
        return None
    body = block_end(out, CursorContext(head, "")).rstrip()
    if not body.strip():
        return "the model produced no test"
    source = head + body + "\n"
    return tests_problem(source) or NewFile(f"test_{module}.py", source)
