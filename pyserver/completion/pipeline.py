"""The completion pipeline: cache -> extra context -> prompt -> model -> filters. Runs on a worker thread; every
call may be stopped between tokens through `should_stop`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from pyserver.completion.cache import SuggestionCache
from pyserver.completion.calibration import load_gate
from pyserver.completion.confidence import ConfidenceGate, Evidence, first_line_evidence
from pyserver.completion.context_ring import ContextRing
from pyserver.completion.filters import CursorContext, filter_suggestion
from pyserver.completion.outcome import FILTER_WORDS, SHOWN, Outcome
from pyserver.completion.prompt import context_block, split_at_line_start
from pyserver.completion.settings import CompletionSettings
from pyserver.completion.window import PrefixWindows, layout
from pyserver.engine.generate import generate
from pyserver.engine.host import QUICK_CTX, ModelHost, common_prefix
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
# A cold prompt (one the KV cache does not hold) is cut to what the measured prefill speed evaluates within this
# share of the time budget, after COLD_OUTPUT_TOKENS of decoding (a single-line suggestion); never below
# COLD_MIN_TOKENS. The warm-up then fills the cache with the whole prompt, and the next request gets all of it.
COLD_BUDGET_SHARE = 0.8
COLD_OUTPUT_TOKENS = 12
COLD_MIN_TOKENS = 64
COLD_STEP_TOKENS = 64


def _why(
    shown: str,
    candidate: str,
    raw: str,
    stop_reason: str,
    removed_by: str | None,
    confidence: float,
    threshold: float,
) -> Outcome:
    """Why the model's answer is shown or not."""
    if shown:
        return SHOWN
    if candidate:
        return Outcome.of("gated", confidence=confidence, threshold=threshold)
    if not raw.strip():
        return Outcome.of("timeout" if stop_reason == "time_budget" else "model_empty")
    return Outcome.of("filtered", detail=FILTER_WORDS.get(removed_by or "", removed_by or "a"))


def _cut(affordable: int) -> int:
    """A cut prompt's size: what the time budget affords, leaving room in the quick cache for the typed part and
    the generation."""
    return min(affordable, QUICK_CTX - TYPED_RESERVE_TOKENS - 96)


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
    cold: bool = False  # the prompt was cut to fit the time budget: a warm-up of the whole prompt should follow
    prefill_ms: float = 0.0
    outcome: Outcome = SHOWN  # why it is empty (or that it is shown)


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
        self.cold_windows = PrefixWindows()  # the windows of cut prompts (a slow model and a cold cache)
        self.gate = ConfidenceGate()  # the completion model's calibration (`calibration.load_gate`)
        self._gate_for: object = None  # the model the gate was loaded for
        self._prompt_lock = threading.Lock()  # completions and warm-ups build prompts on their own threads
        self.last_prompt: list[int] = []  # the last completion's prompt (logged with ryzanstein.logPrompts)

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
            return Completion(
                cached,
                (time.perf_counter() - t0) * 1e3,
                from_cache=True,
                candidate=cached,
                outcome=Outcome.of("forwarded"),
            )
        model = self.host.model
        if model is None or model.tokenizer is None or should_stop():
            return None
        if self._gate_for is not model:
            self.gate, self._gate_for = load_gate(model.path), model
        ctx = CursorContext(prefix, suffix)
        s = self.settings
        self.model_runs += 1
        with self.host.completion_turn(uri) as caches:
            session = caches.full
            budget = min(session.n_ctx, s.max_prompt_tokens) - s.max_tokens
            prompt, typed = self.prompt(uri, model.tokenizer, model.traits.fim_order, prefix, suffix, budget)
            affordable = self.affordable_prompt_tokens()
            cold = affordable is not None and len(prompt) - common_prefix(session.tokens, prompt) > affordable
            whole = len(prompt)
            if cold:  # the full prompt would overrun the time budget: a cut one, on the document's quick cache
                assert affordable is not None
                prompt, typed = self.prompt(
                    uri, model.tokenizer, model.traits.fim_order, prefix, suffix, budget, cold_tokens=_cut(affordable)
                )
                session = caches.quick()
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
        if len(prompt) - r.reused_tokens >= 16:  # a prefill long enough to say something about the speed
            self.host.speeds.note("prefill_tps", len(prompt) - r.reused_tokens, r.prefill_seconds)
        self.host.speeds.note("decode_tps", len(r.tokens), r.decode_seconds)
        self.finished_runs += 1
        candidate, removed_by = filter_suggestion(r.text, ctx, max_lines=s.max_lines)
        evidence = first_line_evidence(r, matcher_for(model.tokenizer).pieces)
        confidence = self.gate.confidence(evidence)
        threshold = self.gate.cut(s.min_confidence)
        shown = candidate if candidate and confidence >= threshold else ""
        self.cache.put(uri, prefix, suffix, shown)
        outcome = _why(shown, candidate, r.text, r.stop_reason, removed_by, confidence, threshold)
        if cold and outcome.empty:
            outcome = Outcome.of("cut_prompt", detail=f"{len(prompt)} of {whole} tokens; then {outcome.message}")
        self.last_prompt = prompt
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
            cold=cold,
            prefill_ms=r.prefill_seconds * 1e3,
            outcome=outcome,
        )

    def affordable_prompt_tokens(self) -> int | None:
        """How many uncached prompt tokens the measured prefill speed evaluates within the time budget, leaving
        time for a single-line suggestion, in steps of COLD_STEP_TOKENS (a speed that drifts a little must not
        change the cut prompt, or its cache); None before the speeds are known."""
        sp, s = self.host.speeds, self.settings
        if sp.prefill_tps <= 0 or sp.decode_tps <= 0:
            return None
        decode_s = min(s.max_tokens, COLD_OUTPUT_TOKENS) / sp.decode_tps
        seconds = max(0.0, s.time_budget_ms / 1e3 * COLD_BUDGET_SHARE - decode_s)
        return max(COLD_MIN_TOKENS, int(sp.prefill_tps * seconds) // COLD_STEP_TOKENS * COLD_STEP_TOKENS)

    def cold_prompt(self, uri: str, text: str, offset: int) -> list[int]:
        """The cut prompt a cold completion at `offset` would use (empty when the full one fits the budget)."""
        model, affordable = self.host.model, self.affordable_prompt_tokens()
        if model is None or model.tokenizer is None or affordable is None:
            return []
        prompt, _ = self.prompt(
            uri, model.tokenizer, model.traits.fim_order, text[:offset], text[offset:], 0, cold_tokens=_cut(affordable)
        )
        return prompt

    def warm_prompt(self, uri: str, text: str, offset: int) -> list[int]:
        """The whole prompt a completion at `offset` would use: what a warm-up puts in the document's cache."""
        model = self.host.model
        if model is None or model.tokenizer is None:
            return []
        budget = min(min(model.config.context_length, 2048), self.settings.max_prompt_tokens) - self.settings.max_tokens
        prompt, _ = self.prompt(uri, model.tokenizer, model.traits.fim_order, text[:offset], text[offset:], budget)
        return prompt

    def prompt(
        self,
        uri: str,
        tok: Tokenizer,
        order: str,
        prefix: str,
        suffix: str,
        budget: int,
        cold_tokens: int | None = None,
    ) -> tuple[list[int], str]:
        """(prompt tokens, the typed part of the cursor's line): `budget` tokens for the prompt and the typed part
        together (TYPED_RESERVE_TOKENS kept for the latter); the suffix gets at most SUFFIX_MAX_TOKENS, extra
        context what the local code leaves beyond LOCAL_MIN_TOKENS, and the code before the cursor's line the rest
        (`window.PrefixWindows`). `cold_tokens`: a prompt of at most that many tokens, no extra context and the
        end of the window only (a cold cache and a slow model: what fits the time budget)."""
        with self._prompt_lock:
            if cold_tokens is not None:
                return self._cold_prompt(uri, tok, order, prefix, suffix, cold_tokens)
            (extra_ids, window_ids, suffix_ids), typed = self._prompt_parts(uri, tok, prefix, suffix, budget)
        return layout(tok, extra_ids + window_ids, suffix_ids, order), typed

    def _cold_prompt(
        self, uri: str, tok: Tokenizer, order: str, prefix: str, suffix: str, cold_tokens: int
    ) -> tuple[list[int], str]:
        """A prompt of at most cold_tokens: the suffix's first quarter of them, no extra context, and a window of
        the code before the line from `cold_windows` (its own stable starts, so that consecutive cold prompts
        share their tokens and the quick cache serves them as the full cache serves full ones)."""
        before_line, typed = split_at_line_start(prefix)
        specials = 3 if tok.special.has_fim else 0
        cap = cold_tokens // 4 if tok.special.has_fim else 0
        suffix_ids = tok.encode(suffix[: 8 * cap])[:cap] if cap and suffix else []
        window = self.cold_windows.window(uri, tok, before_line, max(1, cold_tokens - specials - len(suffix_ids)))
        return layout(tok, window.ids, suffix_ids, order), typed

    def _prompt_parts(
        self, uri: str, tok: Tokenizer, prefix: str, suffix: str, budget: int
    ) -> tuple[tuple[list[int], list[int], list[int]], str]:
        """((extra context, window, suffix) tokens, the typed part of the line)."""
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
        return (extra_ids, window.ids, suffix_ids), typed
