"""The completion pipeline's prompt: the typed part of the line is re-spelled by the model, not put in the prompt."""

from __future__ import annotations

import numpy as np
import pytest

from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.server.settings import ServerSettings
from tests.support.builders import random_model, write_gguf


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> CompletionPipeline:
    path = write_gguf(
        random_model(np.random.default_rng(2), "bitnet", "TQ2_0", n_layer=1), tmp_path_factory.mktemp("m") / "m.gguf"
    )
    host = ModelHost()
    host.load(str(path))
    assert host.model is not None, host.error
    return CompletionPipeline(host, ServerSettings(max_tokens=4).completion)


def test_typing_along_a_line_keeps_the_prompt(engine: CompletionPipeline) -> None:
    head = "def area(w, h):\n"
    line = "    return w * h"
    suffix = "\n\nprint(area(2, 3))\n"
    seen = []
    for n in range(5, len(line) + 1, 3):
        text = head + line[:n] + suffix
        c = engine.complete("file:///a.py", text, len(head) + n, lambda: False)
        assert c is not None and not c.from_cache
        seen.append(c)
    assert len({c.prompt_tokens for c in seen}) == 1
    # After the first keystroke the whole prompt comes from the session's cache (all but the token re-evaluated
    # for its logits).
    assert all(c.reused_tokens == c.prompt_tokens - 1 for c in seen[1:])


def test_index_context_goes_into_the_prompt(engine: CompletionPipeline) -> None:
    calls: list[tuple[str | None, str]] = []

    def lookup(path: str | None, prefix: str, budget: int) -> list[tuple[str, str]]:
        calls.append((path, prefix))
        return [("lib/helpers.py", "def scale_vector(v, k):\n    return [x * k for x in v]")]

    engine.index_context = lookup
    try:
        text = "from lib.helpers import scale_vector\n\nresult = scale_v"
        c = engine.complete("file:///ws/app.py", text, len(text), lambda: False)
        assert c is not None
        tok = engine.host.model.tokenizer  # type: ignore[union-attr]
        assert engine.host.sessions is not None
        prompt = tok.decode(engine.host.sessions.get("file:///ws/app.py").full.tokens)  # type: ignore[union-attr]
        assert "# lib/helpers.py\ndef scale_vector(v, k):" in prompt
        # Looked up for this file, from the text before the cursor's line (the same at every keystroke on it).
        assert calls == [("/ws/app.py", "from lib.helpers import scale_vector\n\n")]
    finally:
        engine.index_context = None
