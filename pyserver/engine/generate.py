"""Generation over a session: streaming text, stop tokens and strings, max tokens, a time budget, cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from pyserver.engine.model import Session
from pyserver.engine.sampling import Sampler
from pyserver.engine.speculative import DraftVerifier
from pyserver.engine.token_bytes import matcher_for

STOP_REASONS = ("eos", "stop_string", "max_tokens", "time_budget", "cancelled", "context_full")


@dataclass
class GenerationResult:
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    stop_reason: str = ""
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens served from the session's cache
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    token_logprobs: list[float] = field(default_factory=list)  # of each generated token
    token_entropies: list[float] = field(default_factory=list)  # of each step's distribution (nats)
    # log-prob of the chosen token minus that of the most likely other token (negative when it was not the top one)
    token_margins: list[float] = field(default_factory=list)
    forced_tokens: int = 0  # leading tokens that spelled out `forced_prefix` (not part of `text`)
    # with `top_logprobs` k: per generated token, the k most likely tokens of its step and their log-probs
    top_alternatives: list[list[tuple[int, float]]] = field(default_factory=list)

    @property
    def decode_tokens_per_second(self) -> float:
        return len(self.tokens) / self.decode_seconds if self.decode_seconds > 0 else 0.0


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of text that could still grow into a stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


def _stats(logits: np.ndarray, token: int) -> tuple[float, float, float]:
    """(log-prob of token, entropy, margin of token over the best other token), from finite logits."""
    z = logits.astype(np.float64)
    z = z - z.max()
    logp = z - np.log(np.exp(z).sum())
    p = np.exp(logp)
    if logp.size < 2:
        return float(logp[token]), 0.0, float("inf")
    second, first = np.partition(logp, -2)[-2:]
    other = second if logp[token] >= first else first
    return float(logp[token]), float(-(p * logp).sum()), float(logp[token] - other)


class Generation:
    """Iterate for text deltas (stop strings are never emitted, not even in part); `result` is complete after.

    `forced_prefix`: text the generation must begin with (the part of the line already typed, left out of the
    prompt so that the model tokenizes it its own way). Tokens are constrained to agree with it until it is
    covered; it is not part of the result's text, and `max_tokens` counts only the tokens after it."""

    def __init__(
        self,
        session: Session,
        prompt: Sequence[int],
        sampler: Sampler | None = None,
        max_tokens: int = 64,
        stop_tokens: Sequence[int] | None = None,
        stop_strings: Sequence[str] = (),
        time_budget_s: float | None = None,
        should_stop: Callable[[], bool] | None = None,
        forced_prefix: str = "",
        top_logprobs: int = 0,
    ) -> None:
        self.session = session
        self.top_logprobs = top_logprobs
        self.prompt = [int(t) for t in prompt]
        self.sampler = sampler or Sampler()
        self.max_tokens = max_tokens
        tok = session.model.tokenizer
        if tok is None:
            raise ValueError("generation needs a model with a tokenizer")
        self.stop_tokens = frozenset(stop_tokens) if stop_tokens is not None else tok.special.stop_ids
        self.stop_strings = [s for s in stop_strings if s]
        self.time_budget_s = time_budget_s
        self.should_stop = should_stop or (lambda: False)
        self.matcher = matcher_for(tok)
        self.forced = self.matcher.normalize(forced_prefix)  # in the vocabulary's spelling
        self.forced_len = len(forced_prefix.encode("utf-8"))  # in the text's
        self.verifier = DraftVerifier(session, session.draft, session.draft_k) if session.draft is not None else None
        self.result = GenerationResult(prompt_tokens=len(self.prompt))
        self._covered = 0  # bytes of the forced prefix spelled out so far

    def _cancelled(self) -> bool:
        return self.should_stop() or self.session.cancel.is_set

    def __iter__(self) -> Iterator[str]:
        r = self.result
        t0 = time.perf_counter()
        deadline = None if self.time_budget_s is None else t0 + self.time_budget_s
        logits = self._prefill()
        t1 = time.perf_counter()
        r.prefill_seconds = t1 - t0
        emitted = 0  # characters of text handed out so far
        while logits is not None:
            if self._cancelled():
                r.stop_reason = "cancelled"
                break
            token = self._choose(logits)
            if token is None or token in self.stop_tokens:
                r.stop_reason = "eos"
                break
            self._record(token, logits)
            # Text from the tokens' own bytes: exact for byte-level and SentencePiece vocabularies alike (a
            # detokenizer may strip a leading space, which a continuation must keep).
            text = self.matcher.text_of(r.tokens)[self.forced_len :].decode("utf-8", errors="replace")
            cut = min(
                (i for i in (text.find(st, max(0, emitted - len(st))) for st in self.stop_strings) if i >= 0),
                default=-1,
            )
            if cut >= 0:
                r.text = text[:cut]
                if cut > emitted:
                    yield text[emitted:cut]
                r.stop_reason = "stop_string"
                break
            safe = self._safe_length(text)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
            r.text = text
            r.stop_reason = self._limit(deadline)
            if r.stop_reason:
                break
            logits = self._next_logits(token)
        if logits is None and not r.stop_reason:
            r.stop_reason = "cancelled"
        if r.stop_reason != "stop_string" and len(r.text) > emitted:
            yield r.text[emitted:]
        r.decode_seconds = time.perf_counter() - t1

    def _prefill(self) -> np.ndarray | None:
        """Evaluates the prompt (reusing what the session's cache holds); None when cancelled."""
        common = 0
        for a, b in zip(self.session.tokens, self.prompt):
            if a != b:
                break
            common += 1
        self.result.reused_tokens = min(common, len(self.prompt) - 1)
        return None if self._cancelled() else self.session.eval(self.prompt)

    def _choose(self, logits: np.ndarray) -> int | None:
        """The next token. While the forced prefix is not yet spelled out, only tokens agreeing with it may come;
        None when no token does (nothing sensible to add)."""
        r = self.result
        if self._covered >= len(self.forced):
            return self.sampler(logits, self.prompt + r.tokens)
        agreeing = self.matcher.agreeing(self.forced[self._covered :])
        if agreeing.size == 0:
            return None
        masked = np.full_like(logits, -np.inf)
        masked[agreeing] = logits[agreeing]
        token = self.sampler(masked, self.prompt + r.tokens)
        self._covered += len(self.matcher.pieces[token])
        r.forced_tokens += 1
        return token

    def _record(self, token: int, logits: np.ndarray) -> None:
        r = self.result
        logp, ent, margin = _stats(logits, token)
        r.tokens.append(token)
        r.token_logprobs.append(logp)
        r.token_entropies.append(ent)
        r.token_margins.append(margin)
        if self.top_logprobs > 0:
            z = logits.astype(np.float64)
            finite = np.isfinite(z)
            k = min(self.top_logprobs, int(finite.sum()))
            best = np.argpartition(-np.where(finite, z, -np.inf), k - 1)[:k] if k else np.array([], dtype=np.int64)
            m = z[finite].max()
            lse = m + np.log(np.exp(z[finite] - m).sum())
            top = sorted(((int(i), float(z[i] - lse)) for i in best), key=lambda x: -x[1])
            r.top_alternatives.append(top)

    def _safe_length(self, text: str) -> int:
        """How much of text can be shown: not a tail that may grow into a stop string, nor half a character."""
        safe = len(text) - _held_back(text, self.stop_strings)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its last bytes
            safe = min(safe, len(text.rstrip("\ufffd")))
        return safe

    def _limit(self, deadline: float | None) -> str:
        """The stop reason when a limit is reached after this token, else ""."""
        r, s = self.result, self.session
        if len(r.tokens) - r.forced_tokens >= self.max_tokens:
            return "max_tokens"
        if deadline is not None and time.perf_counter() >= deadline:
            return "time_budget"
        if len(s.tokens) + 1 > s.n_ctx:
            return "context_full"
        return ""

    def _next_logits(self, token: int) -> np.ndarray | None:
        """Logits after token (None when cancelled); with a draft model they are often already verified."""
        if self.verifier is not None:
            return self.verifier.next_logits(self.prompt + self.result.tokens[:-1], token)
        out = self.session.append([token])
        return None if out is None else out[-1]


def generate(session: Session, prompt: Sequence[int], **kwargs: object) -> GenerationResult:
    """Runs a `Generation` to the end and returns its result."""
    g = Generation(session, prompt, **kwargs)  # type: ignore[arg-type]
    for _ in g:
        pass
    return g.result
