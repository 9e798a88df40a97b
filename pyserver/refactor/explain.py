"""Explain the selection: the model continues a comment that follows the code."""

from __future__ import annotations

import re
from collections.abc import Callable

from pyserver.engine import Session
from pyserver.refactor.common import run
from pyserver.refactor.verify import degenerate

REPEAT_WORDS = 5  # a run of this many words said twice is the model looping, not explaining
HEADER = "\n\n# Explanation of the code above:\n#"


def explain(
    session: Session, selection: str, max_tokens: int, should_stop: Callable[[], bool], context: str = ""
) -> str | None:
    tok = session.model.tokenizer
    assert tok is not None
    prompt = tok.encode(context + selection.rstrip() + HEADER)[-(session.n_ctx - max_tokens) :]
    out = run(session, prompt, max_tokens, ["\n\n"], should_stop)
    if out is None:
        return None
    lines = [ln.strip().lstrip("#").strip() for ln in out.split("\n")]
    return " ".join(ln for ln in lines if ln)


def explanation_problem(text: str) -> str | None:
    """Why an explanation is not worth showing (nothing said, a loop, no words), or None."""
    bad = degenerate(text)
    if bad:
        return bad
    words = re.findall(r"[A-Za-z]{2,}", text)
    if len(words) < 3:
        return "the model had nothing to say about this code"
    grams = [" ".join(words[i : i + REPEAT_WORDS]).lower() for i in range(len(words) - REPEAT_WORDS + 1)]
    if len(grams) != len(set(grams)):  # (explanations come as one line: a loop shows as a phrase said again)
        return "the model repeated itself"
    return None
