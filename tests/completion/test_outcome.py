"""Every completion that comes back empty says why: the pipeline's own reasons (the gate with its confidence, a
filter that removed the suggestion, a model that had nothing, a cut prompt) and the filters' names."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pyserver.completion.filters import CursorContext, filter_suggestion
from pyserver.completion.outcome import REASONS, Outcome
from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.server.settings import ServerSettings
from tests.support.builders import random_model, write_gguf

TEXT = "def add(a, b):\n    return a + \n"
OFFSET = TEXT.index("a + ") + 4


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> ModelHost:
    m = random_model(np.random.default_rng(7), "bitnet", "TQ2_0", n_layer=1, vocab=320)
    m.token_embd[-5:] = 0.0  # the special tokens never win: the model always writes something
    path = write_gguf(m, tmp_path_factory.mktemp("m") / "m.gguf")
    h = ModelHost()
    h.load(str(path))
    assert h.model is not None, h.error
    return h


def pipeline(host: ModelHost, **settings: object) -> CompletionPipeline:
    return CompletionPipeline(host, ServerSettings(max_tokens=8, time_budget_ms=60_000, **settings).completion)  # type: ignore[arg-type]


def test_a_gated_suggestion_says_its_confidence_and_the_threshold(host: ModelHost) -> None:
    c = pipeline(host, min_confidence=1.0).complete("file:///a.py", TEXT, OFFSET, lambda: False)
    assert c is not None and c.text == "" and c.candidate  # (the model wrote one; the gate held it)
    assert c.outcome.reason == "gated"
    assert c.outcome.confidence == pytest.approx(c.confidence)
    assert c.outcome.threshold == 1.0
    assert f"{c.confidence:.2f}" in c.outcome.message and "1.00" in c.outcome.message


def test_a_shown_suggestion_is_shown(host: ModelHost) -> None:
    c = pipeline(host, min_confidence=0.0).complete("file:///b.py", TEXT, OFFSET, lambda: False)
    assert c is not None and c.text
    assert c.outcome.reason == "shown"


def test_a_cut_prompt_that_comes_back_empty_says_so(host: ModelHost) -> None:
    p = pipeline(host, min_confidence=1.0)
    host.speeds.prefill_tps, host.speeds.decode_tps = 1.0, 1000.0  # the whole prompt cannot be prefilled in time
    long_text = "x = 1\n" * 200 + TEXT
    c = p.complete("file:///c.py", long_text, long_text.index("a + ") + 4, lambda: False)
    assert c is not None and c.cold and c.text == ""
    assert c.outcome.reason == "cut_prompt"
    assert "cut" in c.outcome.message


def test_the_filter_that_removed_a_suggestion_is_named() -> None:
    assert filter_suggestion("   \n  ", CursorContext("x = ", "")) == ("", "strip_trailing_whitespace")
    assert filter_suggestion("foo()", CursorContext("x = ", "")) == ("foo()", None)
    # the code after the cursor, restated
    kept, by = filter_suggestion(")", CursorContext("print(x", ")\n"))
    assert kept == "" and by is not None


def test_every_reason_has_a_message_without_document_text() -> None:
    for reason in REASONS:
        o = Outcome.of(reason, confidence=0.2, threshold=0.5, detail="x")
        assert o.message and "\n" not in o.message
    with pytest.raises(KeyError):
        Outcome.of("no-such-reason")
    assert dataclasses.is_dataclass(Outcome)
