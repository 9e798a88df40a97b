"""Draft-verify (speculative) greedy decoding between two models that share a tokenizer: the small model drafts k
tokens one at a time, the large one checks them all in one batched pass, and the output is exactly the large
model's own greedy output (a batched pass gives the same logits as one token at a time: tested).

Both sessions hold the prompt and every emitted token but the last ("pending"); a round feeds the target
[pending, d1..dk] and reads k+1 predictions: the drafts it agrees with are kept, and its own prediction after them
becomes the next pending token, so every round emits at least one token of the target's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pyserver.engine.model import Model, Session


@dataclass
class SpeculativeResult:
    tokens: list[int] = field(default_factory=list)
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # of those, kept
    rounds: int = 0  # target passes after the prompt
    stop_reason: str = ""
    seconds: float = 0.0

    @property
    def acceptance(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0


def plain_greedy(session: Session, prompt: Sequence[int], max_tokens: int) -> list[int]:
    """One target step per token: what draft-verify decoding must reproduce (no tokenizer needed)."""
    logits = session.eval([int(t) for t in prompt])
    out: list[int] = []
    while logits is not None and len(out) < max_tokens:
        out.append(int(np.argmax(logits)))
        if len(out) < max_tokens:
            nxt = session.append([out[-1]])
            logits = None if nxt is None else nxt[-1]
    return out


def check_compatible(target: Model, draft: Model) -> None:
    if target.config.vocab != draft.config.vocab:
        raise ValueError(f"draft and target vocabularies differ ({draft.config.vocab} vs {target.config.vocab})")
    tt, dt = target.tokenizer, draft.tokenizer
    if tt is not None and dt is not None:
        probe = "def f(x):\n    return x  # ünïcode"
        if tt.encode(probe) != dt.encode(probe):
            raise ValueError("draft and target tokenize differently: they cannot share tokens")


def speculative_greedy(target: Session, draft: Session, prompt: Sequence[int], max_tokens: int, k: int = 4,
                       stop_tokens: Sequence[int] = (),
                       should_stop: Callable[[], bool] = lambda: False) -> SpeculativeResult:
    if k < 1:
        raise ValueError("k must be >= 1")
    check_compatible(target.model, draft.model)
    t0 = time.perf_counter()
    r = SpeculativeResult()
    stops = set(stop_tokens)
    prompt = [int(t) for t in prompt]
    logits = target.eval(prompt)
    if logits is None:
        r.stop_reason = "cancelled"
        return r
    pending = int(np.argmax(logits))
    out = [pending]
    while True:
        if pending in stops:
            out.pop()
            r.stop_reason = "eos"
            break
        if len(out) >= max_tokens:
            r.stop_reason = "max_tokens"
            break
        if should_stop():
            r.stop_reason = "cancelled"
            break
        seq = prompt + out
        n = min(k, max_tokens - len(out), target.n_ctx - len(seq))
        if n <= 0:
            r.stop_reason = "context_full"
            break
        # Draft: bring the draft session up to the pending token, then n greedy tokens.
        common = len(draft.tokens)
        if draft.tokens != seq[:common]:
            common = next(i for i, (a, b) in enumerate(zip(draft.tokens, seq)) if a != b)
            draft.truncate(common)
        dl = draft.append(seq[len(draft.tokens):])
        drafts: list[int] = []
        while dl is not None and len(drafts) < n:
            drafts.append(int(np.argmax(dl[-1])))
            if drafts[-1] in stops or len(drafts) == n:
                break
            dl = draft.append([drafts[-1]])
        if dl is None:
            r.stop_reason = "cancelled"
            break
        # Verify: [pending, drafts] in one pass; row i predicts what follows drafts[:i].
        target.truncate(len(seq) - 1)
        tl = target.append([pending, *drafts], n_logits=1 + len(drafts))
        if tl is None:
            r.stop_reason = "cancelled"
            break
        preds = tl.argmax(axis=1)
        j = 0
        while j < len(drafts) and int(preds[j]) == drafts[j]:
            j += 1
        r.rounds += 1
        r.drafted += len(drafts)
        r.accepted += j
        target.truncate(len(seq) + j)  # pending and the accepted drafts stay; the rest goes
        emitted = drafts[:j] + [int(preds[j])]
        for tok in emitted:
            out.append(tok)
            if tok in stops or len(out) >= max_tokens:
                break
        pending = out[-1]  # a stop token among them ends the loop at the top
    r.tokens = out[:max_tokens]
    r.seconds = time.perf_counter() - t0
    return r
