"""Refactors on a Qwen3 model go through its ChatML template with thinking off (writer.chat_prompt), the committed
tiny Qwen3 fixture standing in for Ternary-Bonsai; models without a chat template keep the code-only prompt."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pyserver.completion.prompt import fim_prompt
from pyserver.engine import Model
from pyserver.engine.chat_template import IM_END, ChatMarkers
from pyserver.models import default_model_path
from pyserver.refactor import writer as writer_module
from pyserver.refactor.writer import CONTINUE, FENCE, FILL, GAP, LocalWriter, chat_prompt

FIXTURE = Path(__file__).resolve().parents[2] / "models" / "fixtures" / "qwen3-tiny-outliers-q2_0.gguf"
HEAD = "import os\n\n\ndef size(path):\n    st = os.stat(path)\n"
THINK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def qwen3() -> Model:
    return Model.load(FIXTURE)


def test_a_continuation_as_written_by_hand(qwen3: Model) -> None:
    tok = qwen3.tokenizer
    assert tok is not None
    ids = chat_prompt(tok, HEAD, "    return", None, 1000)
    mk = ChatMarkers.of(tok)
    assert mk is not None and ids[0] == mk.start and ids.count(mk.start) == 2 and ids.count(mk.end) == 1
    # The markers are control tokens (decode leaves them out); the answer opens with the last 4 lines of the head.
    assert tok.decode(ids) == (
        f"user\n{CONTINUE}\n\n{FENCE}\n{HEAD}    return\n{FENCE}\n"
        f"assistant\n{THINK}{FENCE}\n\n\ndef size(path):\n    st = os.stat(path)\n"
    )


def test_fill_in_the_middle_marks_the_gap(qwen3: Model) -> None:
    tok = qwen3.tokenizer
    assert tok is not None
    ids = chat_prompt(tok, HEAD, '    """', '"""\n    return st.st_size\n', 1000, think_block=False)
    assert tok.decode(ids) == (
        f'user\n{FILL}\n\n{FENCE}\n{HEAD}    """{GAP}"""\n    return st.st_size\n\n{FENCE}\n'
        f"assistant\n{FENCE}\n\n\ndef size(path):\n    st = os.stat(path)\n"
    )


def test_a_long_file_is_cut_to_the_budget(qwen3: Model) -> None:
    tok = qwen3.tokenizer
    assert tok is not None
    head = "".join(f"x{i} = {i}\n" for i in range(400)) + HEAD
    suffix = "".join(f"y{i} = {i}\n" for i in range(400))
    ids = chat_prompt(tok, head, "    ", suffix, 600)
    text = tok.decode(ids)
    assert len(ids) <= 600
    assert "x0 = 0\n" not in text and "x399 = 399\n" in text and HEAD in text  # the end nearest the gap stays
    assert "y0 = 0\n" in text and "y399 = 399" not in text  # the suffix keeps its start
    assert text.startswith(f"user\n{FILL}") and text.endswith(f"{FENCE}\n\n\ndef size(path):\n    st = os.stat(path)\n")


def test_the_writer_asks_a_chatml_model_through_its_template(qwen3: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def spy(session: Any, prompt: Sequence[int], max_tokens: int, stop: Sequence[str], *args: Any) -> str:
        seen.update(prompt=list(prompt), stop=list(stop), forced=args[1], stop_tokens=args[4])
        return "x"

    monkeypatch.setattr(writer_module, "run", spy)
    w = LocalWriter(qwen3.session(512))
    assert w.write(HEAD + "    ret", None, 32, ["\n\n"], lambda: False) == "x"
    tok = qwen3.tokenizer
    assert tok is not None
    assert seen["prompt"] == chat_prompt(tok, HEAD, "    ret", None, 512 - 32)
    assert seen["stop"] == ["\n\n", FENCE] and seen["forced"] == "    ret"
    assert tok.id_of(IM_END) in seen["stop_tokens"] and tok.special.eos in seen["stop_tokens"]


def test_a_real_generation_through_the_chat_prompt(qwen3: Model) -> None:
    # Random weights: the text means nothing, but the whole path runs and the answer starts with the forced line.
    out = LocalWriter(qwen3.session(512)).write(HEAD + "    return", None, 8, [], lambda: False)
    assert isinstance(out, str)


def test_a_model_without_a_chat_template_keeps_the_code_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    path = default_model_path()
    assert path is not None
    shipped = Model.load(path)
    assert shipped.traits.chat_template is None
    seen: dict[str, Any] = {}
    monkeypatch.setattr(writer_module, "run", lambda s, prompt, *a: seen.update(prompt=list(prompt)) or "")
    LocalWriter(shipped.session(512)).write(HEAD + "    ", "\n", 32, [], lambda: False)
    tok = shipped.tokenizer
    assert tok is not None
    assert seen["prompt"] == fim_prompt(tok, HEAD, "\n", 512 - 32, order=shipped.traits.fim_order)
