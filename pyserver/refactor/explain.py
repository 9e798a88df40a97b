"""Explain the selection: the model continues a comment that follows the code."""

from __future__ import annotations

import re
from collections.abc import Callable

from pyserver.engine import Session
from pyserver.refactor.common import run
from pyserver.refactor.verify import degenerate

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
    if len(re.findall(r"[A-Za-z]{2,}", text)) < 3:
        return "the model had nothing to say about this code"
    return None
