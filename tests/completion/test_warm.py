"""A slow model's completions: per-document caches, cut prompts that fit the time budget, and warm-ups that fill
the caches in the background and give the model to completions at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pyserver.completion.cache import SuggestionCache
from pyserver.completion.pipeline import CompletionPipeline, _cut
from pyserver.engine.host import ModelHost
from pyserver.server.settings import ServerSettings
from pyserver.server.warmup import warm_position
from tests.support.builders import random_model, write_gguf

CODE = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(200))  # ~2,000 tokens of code


@pytest.fixture
def slow(tmp_path_factory: pytest.TempPathFactory) -> CompletionPipeline:
    m = random_model(np.random.default_rng(5), "bitnet", "TQ2_0", n_layer=2)
    path = write_gguf(m, tmp_path_factory.mktemp("m") / "m.gguf", context_length=2048)
    host = ModelHost()
    host.load(str(path))
    assert host.model is not None, host.error
    pipeline = CompletionPipeline(host, ServerSettings(max_tokens=4, max_prompt_tokens=1024).completion)
    # The speeds of a 2B-class model on two cores: a whole prompt cannot be prefilled within the time budget.
    host.speeds.prefill_tps, host.speeds.decode_tps = 200.0, 40.0
    return pipeline


def _pin_speeds(p: CompletionPipeline) -> None:
    p.host.speeds.prefill_tps, p.host.speeds.decode_tps = 200.0, 40.0  # completions update them: keep them


def test_cold_prompt_fits_the_budget_then_warm_up_gives_the_whole_one(slow: CompletionPipeline) -> None:
    uri, offset = "file:///big.py", CODE.index("def f150")
    affordable = slow.affordable_prompt_tokens()
    assert affordable is not None and affordable < 400
    cold = slow.complete(uri, CODE, offset, lambda: False)
    assert cold is not None and cold.cold
    assert cold.prompt_tokens <= _cut(affordable)
    _pin_speeds(slow)
    # The cursor rests: the quick cache already holds the cut prompt; the warm-up fills the full one.
    full = slow.warm_prompt(uri, CODE, offset)
    assert len(full) > 2 * _cut(affordable)
    warm_position(slow.host, slow, uri, CODE, offset, lambda: False)
    _pin_speeds(slow)
    slow.cache = SuggestionCache()  # (the same request again would be answered from the suggestion cache)
    warm = slow.complete(uri, CODE, offset, lambda: False)
    assert warm is not None and not warm.cold
    assert warm.prompt_tokens == len(full) and warm.reused_tokens == len(full) - 1


def test_returning_to_a_document_finds_its_cache(slow: CompletionPipeline) -> None:
    host = slow.host
    assert host.sessions is not None and host.sessions.capacity >= 2
    a, b = "file:///a.py", "file:///b.py"
    text_a, text_b = CODE[:3000], CODE[3000:6000]
    for uri, text in ((a, text_a), (b, text_b)):
        warm_position(host, slow, uri, text, len(text), lambda: False)
        _pin_speeds(slow)
    c = slow.complete(a, text_a, len(text_a), lambda: False)
    assert c is not None and not c.cold and c.reused_tokens == c.prompt_tokens - 1


def test_lru_reuses_the_oldest_documents_caches(slow: CompletionPipeline) -> None:
    sessions = slow.host.sessions
    assert sessions is not None
    first = sessions.get("file:///0.py")
    first.full.append([1, 2, 3])
    for i in range(1, sessions.capacity):
        sessions.get(f"file:///{i}.py")
    assert len(sessions) == sessions.capacity
    reused = sessions.get("file:///new.py")
    assert reused is first and first.full.tokens == []  # the evicted document's cache, emptied, serves the new one


def test_a_completion_goes_before_a_running_warm_up(slow: CompletionPipeline) -> None:
    host, uri = slow.host, "file:///w.py"
    full = slow.warm_prompt(uri, CODE, len(CODE) // 2)
    started, done = threading.Event(), []

    def stop() -> bool:
        started.set()
        return False

    th = threading.Thread(target=lambda: done.append(host.warm(uri, full, stop=stop)))
    th.start()
    started.wait(10)
    c = slow.complete("file:///other.py", "x = 1\ny = ", 10, lambda: False)
    assert c is not None  # served while the warm-up was running
    th.join(60)
    assert done and host.sessions is not None
    assert host.sessions.get(uri).full.tokens == full[:-1]  # and the warm-up finished its job after it
