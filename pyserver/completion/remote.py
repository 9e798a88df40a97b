"""An inline completion from the remote tier (a configured OpenAI-compatible server that fills the middle): the
code around the cursor as prompt and suffix, the same stops and filters as the local pipeline, and the completion
time budget as its deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from pyserver.completion.filters import apply_filters
from pyserver.completion.filters.context import CursorContext
from pyserver.completion.pipeline import Completion
from pyserver.completion.settings import CompletionSettings
from pyserver.tiers.remote import RemoteEngine, RemoteUnavailable

PREFIX_CHARS = 6000
SUFFIX_CHARS = 1500


def remote_completion(
    engine: RemoteEngine, text: str, offset: int, should_stop: Callable[[], bool], settings: CompletionSettings
) -> Completion | None:
    """The server's suggestion, filtered; None when stopped, when it could not answer in time, or when it is down."""
    t0 = time.perf_counter()
    prefix, suffix = text[:offset], text[offset:]
    ctx = CursorContext(prefix, suffix)
    deadline = t0 + settings.time_budget_ms / 1e3
    try:
        out = engine.complete(
            prefix[-PREFIX_CHARS:],
            suffix[:SUFFIX_CHARS],
            settings.max_tokens,
            ["\n"] if ctx.mid_line else ["\n\n\n"],
            lambda: should_stop() or time.perf_counter() > deadline,
            timeout_s=max(0.1, deadline - time.perf_counter()),
        )
    except RemoteUnavailable:
        return None
    if out is None:
        return None
    shown = apply_filters(out, ctx, max_lines=settings.max_lines)
    return Completion(shown, (time.perf_counter() - t0) * 1e3, stop_reason="remote", candidate=shown)
