"""Draft-verify (speculative) greedy decoding between two models that share a tokenizer: the small model drafts k
tokens one at a time, the large one checks them all in one batched pass, and the output is exactly the large
model's own greedy output (a batched pass gives the same logits as one token at a time: tested).

A round feeds the target [token, d1..dk] (token: its own latest choice) and reads k+1 predictions; while its next
choices equal the drafts, their logits are already there. Every round so yields at least one token of the
target's own; on this 2-core AVX2 machine a verify pass of 2 tokens costs ~1.3 single steps, 5 tokens ~3.5
(bench speculative), so k = 1 is the default.
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
    rejected: int = 0  # drafts the target disagreed with (the rest of their round was never checked)
    rounds: int = 0  # target passes after the prompt
    stop_reason: str = ""
    seconds: float = 0.0

    @property
    def acceptance(self) -> float:
        """The chance that a checked draft token is kept (drafts left over when generation ended don't count)."""
        checked = self.accepted + self.rejected
        return self.accepted / checked if checked else 0.0


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


class DraftVerifier:
    """The draft-verify step, for any generation loop: given the tokens so far and the target's choice of the next
    one, the target's logits after it, from a draft it already verified when the draft guessed right, else from a
    new round: the draft proposes k tokens after it and the target evaluates [token, d1..dk] in one pass."""

    def __init__(self, target: Session, draft: Session, k: int = 1) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        check_compatible(target.model, draft.model)
        self.target, self.draft, self.k = target, draft, k
        self._queue: list[tuple[int, np.ndarray]] = []  # verified drafts ahead: (token, logits after it)
        self.drafted = self.accepted = self.rejected = self.rounds = 0

    def next_logits(self, before: Sequence[int], token: int) -> np.ndarray | None:
        """Logits after `before + [token]` (None when cancelled); the target session holds at least `before`."""
        if self._queue and self._queue[0][0] == token:
            self.accepted += 1
            return self._queue.pop(0)[1]
        if self._queue:
            self.rejected += 1  # the target chose otherwise: this draft and the rest of its round are dropped
        self._queue.clear()
        seq = [*before, token]
        room = self.target.n_ctx - len(seq)
        n = min(self.k, room)
        drafts: list[int] = []
        if n > 0:
            d = self.draft
            common = next((i for i, (a, b) in enumerate(zip(d.tokens, seq)) if a != b), min(len(d.tokens), len(seq)))
            d.truncate(common)
            dl = d.append(seq[common:])
            while dl is not None and len(drafts) < n:
                drafts.append(int(np.argmax(dl[-1])))
                if len(drafts) < n:
                    dl = d.append([drafts[-1]])
        self.target.truncate(len(before))
        rows = self.target.append([token, *drafts], n_logits=1 + len(drafts))
        if rows is None:
            return None
        self.rounds += 1
        self.drafted += len(drafts)
        self._queue = list(zip(drafts, rows[1:]))
        return rows[0]


def speculative_greedy(
    target: Session,
    draft: Session,
    prompt: Sequence[int],
    max_tokens: int,
    k: int = 1,
    stop_tokens: Sequence[int] = (),
    should_stop: Callable[[], bool] = lambda: False,
) -> SpeculativeResult:
    """Greedy tokens of the target, drafted by `draft` (no tokenizer needed: the benchmark's random models)."""
    v = DraftVerifier(target, draft, k)
    t0 = time.perf_counter()
    r = SpeculativeResult()
    stops = set(stop_tokens)
    prompt = [int(t) for t in prompt]
    logits = target.eval(prompt)
    out: list[int] = []
    while True:
        if logits is None or should_stop():
            r.stop_reason = "cancelled"
            break
        token = int(np.argmax(logits))
        if token in stops:
            r.stop_reason = "eos"
            break
        out.append(token)
        if len(out) >= max_tokens:
            r.stop_reason = "max_tokens"
            break
        if len(prompt) + len(out) >= target.n_ctx:
            r.stop_reason = "context_full"
            break
        logits = v.next_logits(prompt + out[:-1], token)
    r.tokens, r.drafted, r.accepted, r.rejected, r.rounds = out, v.drafted, v.accepted, v.rejected, v.rounds
    r.seconds = time.perf_counter() - t0
    return r
