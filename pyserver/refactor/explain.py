"""Explain the selection: the model continues a comment that follows the code."""

from __future__ import annotations

from collections.abc import Callable

from pyserver.engine import Session
from pyserver.refactor.common import run

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
    text = " ".join(ln for ln in lines if ln)
    return text or "(the model had nothing to say about this code)"
