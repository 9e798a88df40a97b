"""What the refactors share: finding the function at a cursor, running the model with a stop flag."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.repetition import cut_repetition
from pyserver.engine import Session
from pyserver.engine.generate import Generation
from pyserver.engine.sampling import Sampler


@dataclass(frozen=True)
class FunctionSpan:
    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    header_end_line: int  # 1-based line of the last line of the `def ...:` header
    body_indent: str
    docstring: tuple[int, int] | None  # 1-based first and last line of an existing docstring


def function_at(text: str, line: int) -> FunctionSpan | None:
    """The innermost function whose lines contain `line` (1-based), or None (or when the text does not parse)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    best: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            end = node.end_lineno or node.lineno
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if start <= line <= end and (best is None or node.lineno > best.lineno):
                best = node
    if best is None:
        return None
    first = best.body[0]
    lines = text.split("\n")
    body_line = lines[first.lineno - 1]
    indent = body_line[: len(body_line) - len(body_line.lstrip())]
    doc = None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        doc = (first.lineno, first.end_lineno or first.lineno)
    return FunctionSpan(best.name, best, first.lineno - 1, indent, doc)


def run(
    session: Session,
    prompt: Sequence[int],
    max_tokens: int,
    stop: Sequence[str],
    should_stop: Callable[[], bool],
    forced: str = "",
    sampler: Sampler | None = None,
    on_text: Callable[[str], None] | None = None,
    stop_tokens: Sequence[int] | None = None,
) -> str | None:
    """The generated text after `forced` (the prompt's last line, see `split_at_line_start`), runaway repetition
    cut (the completion filter's rule); None when stopped. `on_text(text so far)` is called as it grows.
    `stop_tokens`: instead of the tokenizer's (a chat prompt adds its end-of-turn marker)."""
    g = Generation(
        session,
        prompt,
        max_tokens=max_tokens,
        stop_tokens=stop_tokens,
        stop_strings=stop,
        should_stop=should_stop,
        forced_prefix=forced,
        sampler=sampler,
    )
    so_far = ""
    for delta in g:
        so_far += delta
        if on_text is not None:
            on_text(so_far)
    r = g.result
    return None if r.stop_reason == "cancelled" else cut_repetition(r.text, CursorContext("", ""))


def line_offsets(text: str) -> list[int]:
    """Character offset of the start of every line (index 0 = line 1)."""
    offs, pos = [], 0
    for line in text.split("\n"):
        offs.append(pos)
        pos += len(line) + 1
    return offs
