"""The completion pipeline: cache -> extra context -> prompt -> model -> filters. Runs on a worker thread; every
call may be stopped between tokens through `should_stop`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from pyserver.completion.cache import SuggestionCache
from pyserver.completion.calibration import load_gate
from pyserver.completion.confidence import ConfidenceGate, Evidence, first_line_evidence
from pyserver.completion.context_ring import ContextRing
from pyserver.completion.filters import CursorContext, apply_filters
from pyserver.completion.prompt import context_block, split_at_line_start
from pyserver.completion.settings import CompletionSettings
from pyserver.completion.window import PrefixWindows, layout
from pyserver.engine.generate import generate
from pyserver.engine.host import ModelHost
from pyserver.engine.token_bytes import matcher_for
from pyserver.engine.tokenizer import Tokenizer

# The suffix follows the prefix in the fill-in-the-middle layout (or leads it, SPM), and is re-read whenever it
# changes: it is kept short.
SUFFIX_MAX_TOKENS = 48
# The extra context is looked up again only after the cursor moved this many lines: every change re-evaluates the
# whole prompt after it (it leads the prompt), so it must not change at every line.
CONTEXT_REFRESH_LINES = 12
# The code before the cursor comes first: extra context only gets what the prompt has beyond this many tokens of
# it (an earlier shipped model with a 512-token context lost matches when the index's context shortened the local
# window).
LOCAL_MIN_TOKENS = 500
TYPED_RESERVE_TOKENS = 32  # context kept for the typed part of the line, which the generation spells out
CHARS_PER_TOKEN = 3  # a rough figure for code, to size the extra context's lookup in characters


@dataclass(frozen=True)
class Completion:
    text: str
    latency_ms: float
    from_cache: bool = False
    prompt_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    tokens_per_s: float = 0.0
    stop_reason: str = ""
    mean_entropy: float = 0.0  # of the model's distributions over the tokens it chose (not the re-spelled ones)
    candidate: str = ""  # the filtered suggestion before the confidence gate (`text` is "" when the gate held it)
    evidence: Evidence | None = None  # what the model's own probabilities say about the candidate
    confidence: float = 1.0


class CompletionPipeline:
    def __init__(self, host: ModelHost, settings: CompletionSettings) -> None:
        self.host = host
        self.settings = settings
        self.cache = SuggestionCache()
        self.ring = ContextRing()
        self.model_runs = 0  # completions that reached the model (not served from the cache)
        self.finished_runs = 0  # of those, generations that ran to the end
        self.stopped_runs = 0  # and those stopped between tokens (a newer request, a cancel)
        # (file path, prefix, character budget) -> [(path, chunk text)] from the workspace index, when there is one.
        self.index_context: Callable[[str | None, str, int], list[tuple[str, str]]] | None = None
        self._context_cache: dict[str, tuple[int, str]] = {}
        self.windows = PrefixWindows()
        self.gate = ConfidenceGate()  # the completion model's calibration (`calibration.load_gate`)
        self._gate_for: object = None  # the model the gate was loaded for

    def _stable_extra_context(self, uri: str, prefix: str, suffix: str, budget: int) -> str:
        line = prefix.count("\n")
        cached = self._context_cache.get(uri)
        if cached is not None and abs(line - cached[0]) < CONTEXT_REFRESH_LINES and len(cached[1]) <= budget:
            return cached[1]
        extra = self._extra_context(uri, prefix, suffix, budget)
        self._context_cache = {uri: (line, extra)}  # one document at a time: the one being typed in
        return extra

    def _extra_context(self, uri: str, prefix: str, suffix: str, budget: int) -> str:
        """Code from elsewhere for the prompt: what the workspace index finds for the text before the cursor
        (definitions of the names used there first), then recently seen chunks of open documents."""
        parts: list[str] = []
        if self.index_context is not None:
            path = unquote(urlparse(uri).path) if uri.startswith("file:") else None
            for path_, text in self.index_context(path, prefix, budget):
                parts.append(context_block(path_, text))
                budget -= len(parts[-1])
        for c in self.ring.pick(uri, prefix[-1500:] + suffix[:500], max(0, budget)):
            parts.append(context_block(PurePosixPath(c.uri).name, c.text))
        return "".join(parts)

    def complete(self, uri: str, text: str, offset: int, should_stop: Callable[[], bool]) -> Completion | None:
        """None when stopped or when the model is not ready."""
        t0 = time.perf_counter()
        prefix, suffix = text[:offset], text[offset:]
        cached = self.cache.get(uri, prefix, suffix)
        if cached is not None:
            return Completion(cached, (time.perf_counter() - t0) * 1e3, from_cache=True, candidate=cached)
        model = self.host.model
        if model is None or model.tokenizer is None or should_stop():
            return None
        if self._gate_for is not model:
            self.gate, self._gate_for = load_gate(model.path), model
        ctx = CursorContext(prefix, suffix)
        s = self.settings
        self.model_runs += 1
        with self.host.completion_turn() as session:
            prompt, typed = self.prompt(
                uri,
                model.tokenizer,
                model.traits.fim_order,
                prefix,
                suffix,
                min(session.n_ctx, s.max_prompt_tokens) - s.max_tokens,
            )
            stops = ["\n"] if ctx.mid_line else ["\n\n\n"]
            r = generate(
                session,
                prompt,
                max_tokens=s.max_tokens,
                stop_strings=stops,
                forced_prefix=typed,
                time_budget_s=s.time_budget_ms / 1e3,
                should_stop=should_stop,
            )
        if r.stop_reason == "cancelled":
            self.stopped_runs += 1
            return None
        self.finished_runs += 1
        candidate = apply_filters(r.text, ctx, max_lines=s.max_lines)
        evidence = first_line_evidence(r, matcher_for(model.tokenizer).pieces)
        confidence = self.gate.confidence(evidence)
        shown = candidate if candidate and self.gate.passes(confidence, s.min_confidence) else ""
        self.cache.put(uri, prefix, suffix, shown)
        free = r.token_entropies[r.forced_tokens :]
        return Completion(
            shown,
            (time.perf_counter() - t0) * 1e3,
            prompt_tokens=len(prompt),
            reused_tokens=r.reused_tokens,
            generated_tokens=len(r.tokens),
            tokens_per_s=r.decode_tokens_per_second,
            stop_reason=r.stop_reason,
            mean_entropy=sum(free) / len(free) if free else 0.0,
            candidate=candidate,
            evidence=evidence,
            confidence=confidence,
        )

    def prompt(
        self, uri: str, tok: Tokenizer, order: str, prefix: str, suffix: str, budget: int
    ) -> tuple[list[int], str]:
        """(prompt tokens, the typed part of the cursor's line): `budget` tokens for the prompt and the typed part
        together (TYPED_RESERVE_TOKENS kept for the latter); the suffix gets at most SUFFIX_MAX_TOKENS, extra
        context what the local code leaves beyond LOCAL_MIN_TOKENS, and the code before the cursor's line the rest
        (`window.PrefixWindows`)."""
        before_line, typed = split_at_line_start(prefix)
        has_fim = tok.special.has_fim
        # A fixed reserve for the typed part (forced tokens follow the prompt in the context), so that the prompt
        # does not change while the user types along the line.
        room = max(0, budget - (3 if has_fim else 0) - TYPED_RESERVE_TOKENS)
        suffix_cap = min(SUFFIX_MAX_TOKENS, room // 4) if has_fim else 0
        suffix_ids = tok.encode(suffix[: 8 * SUFFIX_MAX_TOKENS])[:suffix_cap] if suffix_cap and suffix else []
        share = room - suffix_cap
        local_need = min(LOCAL_MIN_TOKENS, len(before_line) // CHARS_PER_TOKEN)
        extra_room = min(self.settings.context_chars, CHARS_PER_TOKEN * (share - local_need))
        extra_ids: list[int] = []
        if extra_room > 0:
            extra = self._stable_extra_context(uri, before_line, suffix, extra_room)
            extra_ids = tok.encode(extra)[: share - local_need] if extra else []
        window = self.windows.window(uri, tok, before_line, share - len(extra_ids))
        return layout(tok, extra_ids + window.ids, suffix_ids, order), typed
