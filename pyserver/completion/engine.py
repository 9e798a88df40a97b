"""The completion pipeline: cache -> extra context -> prompt -> model -> filters. Runs on a worker thread; every
call may be stopped between tokens through `should_stop`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from pyserver.completion.cache import SuggestionCache
from pyserver.completion.context_ring import ContextRing
from pyserver.completion.filters import CursorContext, apply_filters
from pyserver.completion.prompt import context_block, fim_prompt, split_at_line_start
from pyserver.engine.generate import generate
from pyserver.server.model_host import ModelHost
from pyserver.server.settings import ServerSettings


# The prompt's prefix starts at a line boundary that moves in steps of this many characters, so consecutive
# keystrokes share the whole prompt up to the cursor and the KV cache serves it; the suffix (which follows the prefix
# in the fill-in-the-middle layout, and so is re-read after every keystroke) is kept short.
PREFIX_STEP_CHARS = 2048
SUFFIX_MAX_TOKENS = 48


def stable_prefix_start(prefix: str, max_chars: int) -> int:
    if len(prefix) <= max_chars:
        return 0
    start = (len(prefix) - max_chars) // PREFIX_STEP_CHARS * PREFIX_STEP_CHARS + PREFIX_STEP_CHARS
    nl = prefix.find("\n", start)
    return start if nl < 0 else nl + 1


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


class CompletionEngine:
    def __init__(self, host: ModelHost, settings: ServerSettings) -> None:
        self.host = host
        self.settings = settings
        self.cache = SuggestionCache()
        self.ring = ContextRing()
        self.model_runs = 0  # completions that reached the model (not served from the cache)
        self.finished_runs = 0  # of those, generations that ran to the end
        self.stopped_runs = 0  # and those stopped between tokens (a newer request, a cancel)
        # (file path, prefix, character budget) -> [(path, chunk text)] from the workspace index, when there is one.
        self.index_context: Callable[[str | None, str, int], list[tuple[str, str]]] | None = None

    def _extra_context(self, uri: str, prefix: str, suffix: str) -> str:
        """Code from elsewhere for the prompt: what the workspace index finds for the text before the cursor
        (definitions of the names used there first), then recently seen chunks of open documents."""
        budget = self.settings.context_chars
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
            return Completion(cached, (time.perf_counter() - t0) * 1e3, from_cache=True)
        model = self.host.model
        if model is None or model.tokenizer is None or should_stop():
            return None
        ctx = CursorContext(prefix, suffix)
        s = self.settings
        self.model_runs += 1
        with self.host.completion_turn() as session:
            budget = min(session.n_ctx, s.max_prompt_tokens) - s.max_tokens
            # ~3 characters per token of code: a window that rarely needs trimming by tokens.
            window = prefix[stable_prefix_start(prefix, 3 * budget):]
            head, typed = split_at_line_start(window)
            suffix_text = suffix[: 8 * SUFFIX_MAX_TOKENS]
            # The extra context is looked up from the text before the cursor's line, so it too stays the same while
            # the user types along the line (and the whole prompt stays cached).
            extra = self._extra_context(uri, prefix[: len(prefix) - len(typed)], suffix)
            prompt = fim_prompt(model.tokenizer, extra + head, suffix_text, budget,
                                suffix_tokens=SUFFIX_MAX_TOKENS)
            stops = ["\n"] if ctx.mid_line else ["\n\n\n"]
            r = generate(session, prompt, max_tokens=s.max_tokens, stop_strings=stops, forced_prefix=typed,
                         time_budget_s=s.time_budget_ms / 1e3, should_stop=should_stop)
        if r.stop_reason == "cancelled":
            self.stopped_runs += 1
            return None
        self.finished_runs += 1
        shown = apply_filters(r.text, ctx, max_lines=s.max_lines)
        self.cache.put(uri, prefix, suffix, shown)
        return Completion(shown, (time.perf_counter() - t0) * 1e3, prompt_tokens=len(prompt),
                          reused_tokens=r.reused_tokens, generated_tokens=len(r.tokens),
                          tokens_per_s=r.decode_tokens_per_second, stop_reason=r.stop_reason)
