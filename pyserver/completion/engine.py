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
# The extra context is looked up again only after the cursor moved this many lines: every change re-evaluates the
# whole prompt after it (it leads the prompt), so it must not change at every line.
CONTEXT_REFRESH_LINES = 12
# The code before the cursor comes first: extra context only gets what the prompt has beyond this many characters
# of it (with the shipped model's 512-token context that is nothing: bench completion measured the index's
# context costing it matches when it shortened the local window).
LOCAL_MIN_CHARS = 1500


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
    mean_entropy: float = 0.0  # of the model's distributions over the tokens it chose (not the re-spelled ones)


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
        self._context_cache: dict[str, tuple[int, str]] = {}

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
            return Completion(cached, (time.perf_counter() - t0) * 1e3, from_cache=True)
        model = self.host.model
        if model is None or model.tokenizer is None or should_stop():
            return None
        ctx = CursorContext(prefix, suffix)
        s = self.settings
        self.model_runs += 1
        with self.host.completion_turn() as session:
            budget = min(session.n_ctx, s.max_prompt_tokens) - s.max_tokens
            # ~3 characters per token of code: a window that rarely needs trimming by tokens. The extra context
            # gets what is left beyond LOCAL_MIN_CHARS of local code, and is looked up from the text before the
            # cursor's line, so it stays the same while the user types along the line (the prompt stays cached).
            budget_chars = 3 * budget
            before_line = prefix[: len(prefix) - len(split_at_line_start(prefix)[1])]
            room = min(s.context_chars, budget_chars - min(len(prefix), LOCAL_MIN_CHARS))
            extra = self._stable_extra_context(uri, before_line, suffix, room) if room > 0 else ""
            window = prefix[stable_prefix_start(prefix, budget_chars - len(extra)):]
            head, typed = split_at_line_start(window)
            suffix_text = suffix[: 8 * SUFFIX_MAX_TOKENS]
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
        free = r.token_entropies[r.forced_tokens:]
        return Completion(shown, (time.perf_counter() - t0) * 1e3, prompt_tokens=len(prompt),
                          reused_tokens=r.reused_tokens, generated_tokens=len(r.tokens),
                          tokens_per_s=r.decode_tokens_per_second, stop_reason=r.stop_reason,
                          mean_entropy=sum(free) / len(free) if free else 0.0)
