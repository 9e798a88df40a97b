"""Background warm-up: when the cursor rests in a document (the extension's `ryzanstein/cursorRest`
notification) or a suggestion had to make do with a cut prompt, the whole prompt for that position is prefilled
into the document's KV cache, so the next suggestion there finds it warm. One warm-up at a time: a newer request
supersedes the running one at its next step, and completions cancel a running step at once (ModelHost.warm).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost

log = logging.getLogger("ryzanstein")


def warm_position(
    host: ModelHost, pipeline: CompletionPipeline, uri: str, text: str, offset: int, stop: Callable[[], bool]
) -> int:
    """Warms the document's caches for a cursor at `offset`: first the cut prompt a slow model answers cold (when
    the whole prompt would overrun the time budget), then the whole prompt. Returns the tokens evaluated."""
    full = pipeline.warm_prompt(uri, text, offset)
    affordable = pipeline.affordable_prompt_tokens()
    done = 0
    if full and affordable is not None and len(full) > affordable and not stop():
        done += host.warm(uri, pipeline.cold_prompt(uri, text, offset), stop=stop, quick=True)
    if full and not stop():
        done += host.warm(uri, full, stop=stop)
    return done


class WarmUps:
    def __init__(self) -> None:
        self._generation = 0
        self._lock = threading.Lock()
        self.completed = 0  # warm-ups that ran to the end (the cache holds the whole prompt)
        self.tokens = 0  # tokens they evaluated

    def request(
        self, host: ModelHost, pipeline: CompletionPipeline, uri: str, text: str, offset: int
    ) -> threading.Thread:
        with self._lock:
            self._generation += 1
            mine = self._generation

        def superseded() -> bool:
            return self._generation != mine

        def run() -> None:
            try:
                self.tokens += warm_position(host, pipeline, uri, text, offset, superseded)
                self.completed += int(not superseded())
            except Exception:  # a warm-up is an optimisation: never let it take anything down
                log.exception("warm-up failed")

        th = threading.Thread(target=run, name="warm-up", daemon=True)
        th.start()
        return th
