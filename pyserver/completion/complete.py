"""One completion at a cursor: prompt, generation, the text to show, and how long it took."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pyserver.completion.prompt import fim_prompt
from pyserver.engine import Model, Session
from pyserver.engine.generate import generate


@dataclass(frozen=True)
class Suggestion:
    text: str
    latency_ms: float
    prompt_tokens: int
    reused_tokens: int
    generated_tokens: int
    stop_reason: str


def complete_line(
    model: Model,
    text: str,
    offset: int,
    session: Session | None = None,
    max_tokens: int = 48,
    max_prompt_tokens: int | None = None,
) -> Suggestion:
    """Completes the rest of the line at `offset` (a character offset into `text`)."""
    tok = model.tokenizer
    assert tok is not None
    t0 = time.perf_counter()
    session = session or model.session()
    budget = (max_prompt_tokens or session.n_ctx) - max_tokens
    line_end = text.find("\n", offset)
    line_end = len(text) if line_end < 0 else line_end
    prompt = fim_prompt(tok, text[:offset], text[line_end:], budget, order=model.traits.fim_order)
    r = generate(session, prompt, max_tokens=max_tokens, stop_strings=["\n"])
    return Suggestion(
        text=r.text.split("\n")[0].rstrip(),
        latency_ms=(time.perf_counter() - t0) * 1e3,
        prompt_tokens=len(prompt),
        reused_tokens=r.reused_tokens,
        generated_tokens=len(r.tokens),
        stop_reason=r.stop_reason,
    )
