"""Explain the selection: the model continues a comment that follows the code."""

from __future__ import annotations

import re
from collections.abc import Callable

from pyserver.refactor.verify import degenerate, repeats_phrase
from pyserver.refactor.writer import Writer

REPEAT_WORDS = 5  # a run of this many words said twice is the model looping, not explaining
HEADER = "\n\n# Explanation of the code above:\n#"


def explain(
    writer: Writer,
    selection: str,
    max_tokens: int,
    should_stop: Callable[[], bool],
    context: str = "",
    on_text: Callable[[str], None] | None = None,
) -> str | None:
    """The explanation, as prose (the comment's `#` taken off); None when stopped. `on_text` gets it as it grows."""
    stream = (lambda text: on_text(prose(text))) if on_text is not None else None
    out = writer.write(context + selection.rstrip() + HEADER, None, max_tokens, ["\n\n"], should_stop, on_text=stream)
    return None if out is None else prose(out)


def prose(comment: str) -> str:
    lines = [ln.strip().lstrip("#").strip() for ln in comment.split("\n")]
    return " ".join(ln for ln in lines if ln)


def explanation_problem(text: str) -> str | None:
    """Why an explanation is not worth showing (nothing said, a loop, no words), or None."""
    bad = degenerate(text)
    if bad:
        return bad
    words = re.findall(r"[A-Za-z]{2,}", text)
    if len(words) < 3:
        return "the model had nothing to say about this code"
    if repeats_phrase(text, REPEAT_WORDS, 2):  # (explanations come as one line: a loop is a phrase said again)
        return "the model repeated itself"
    return None
