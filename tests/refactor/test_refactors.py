"""Refactors produce well-formed edits in the right place (the text itself is the model's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyserver.engine import Model
from pyserver.refactor import TextEdit
from pyserver.refactor.common import function_at
from pyserver.refactor.docstring import docstring_edit
from pyserver.refactor.explain import explain
from pyserver.refactor.rewrite import rewrite_edit
from pyserver.refactor.sandbox import PytestRun
from pyserver.refactor.write_tests import WrittenTests, write_tests
from pyserver.refactor.writer import LocalWriter
from tests.support.builders import random_model, write_gguf

SOURCE = '''import math


def area(w, h):
    """Old docstring."""
    return w * h


@staticmethod
def circle(r):
    return math.pi * r ** 2
'''


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    m = random_model(np.random.default_rng(1), "bitnet", "TQ2_0", n_layer=1)
    m.token_embd[-5:] = 0.0  # specials never win: the random model always writes something
    return Model.load(write_gguf(m, tmp_path_factory.mktemp("m") / "m.gguf", context_length=2048))


PASSED = PytestRun(collected=1, passed=1)


def w(model: Model) -> LocalWriter:
    """The engine writing for a refactor, on a fresh session."""
    return LocalWriter(model.session(1024))


def never() -> bool:
    return False


def test_function_at() -> None:
    assert function_at(SOURCE, 5).name == "area"  # type: ignore[union-attr]
    fn = function_at(SOURCE, 9)  # the decorator line belongs to the function
    assert fn is not None and fn.name == "circle" and fn.docstring is None and fn.body_indent == "    "
    assert function_at(SOURCE, 1) is None
    assert function_at("def broken(:\n", 1) is None


def _model_says(monkeypatch: pytest.MonkeyPatch, module: object, text: str) -> None:
    """The model's text for a refactor (the placement and the verification are what is tested here)."""
    del module
    monkeypatch.setattr(LocalWriter, "write", lambda *a, **k: text)


def test_update_replaces_the_docstring_add_inserts_one(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    from pyserver.refactor import docstring

    _model_says(monkeypatch, docstring, "Return the area of a w by h rectangle.")
    edit = docstring_edit(w(model), SOURCE, 4, 24, never, mode="update")
    assert isinstance(edit, TextEdit)
    assert SOURCE[edit.start : edit.end] == '    """Old docstring."""\n'
    assert edit.new_text == '    """Return the area of a w by h rectangle."""\n'
    edit = docstring_edit(w(model), SOURCE, 11, 24, never, mode="add")
    assert isinstance(edit, TextEdit) and edit.start == edit.end == SOURCE.index("    return math.pi")
    # Add never replaces a docstring; update never invents one.
    assert docstring_edit(w(model), SOURCE, 4, 24, never, mode="add") == (
        "area already has a docstring (Update Docstring replaces it)"
    )
    assert "no docstring to update" in str(docstring_edit(w(model), SOURCE, 11, 24, never, mode="update"))


@pytest.mark.parametrize(
    ("said", "why"),
    [
        ("def __eq__(self, a, b", "code instead of a docstring"),
        ("", "produced nothing"),
        ("circle", "says nothing"),
        ("Compute it.\nCompute it.\nCompute it.\nCompute it.", "repeated itself"),
        ("return math.pi * r ** 2", "code instead of a docstring"),
        (  # the shipped model on circle_area (seen over LSP): a sentence said again and again
            "Return the circle.\n\nThe radius is a circle of the radius. The radius is a circle of the radius. "
            "The radius is a circle of the radius.",
            "repeated itself",
        ),
    ],
)
def test_junk_docstrings_are_refused(monkeypatch: pytest.MonkeyPatch, model: Model, said: str, why: str) -> None:
    from pyserver.refactor import docstring

    _model_says(monkeypatch, docstring, said)
    result = docstring_edit(w(model), SOURCE, 11, 24, never)
    assert isinstance(result, str) and why in result


def test_stop_flag_cancels(model: Model) -> None:
    assert docstring_edit(w(model), SOURCE, 11, 24, lambda: True) is None


def test_rewrite_replaces_whole_lines_and_is_verified(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    from pyserver.refactor import rewrite

    start = SOURCE.index("return w * h")
    end = start + len("return w * h")
    _model_says(monkeypatch, rewrite, "return float(w) * float(h)")
    edit = rewrite_edit(w(model), SOURCE, start, end, "use floats", 32, never)
    assert isinstance(edit, TextEdit)
    assert edit.start == SOURCE.rfind("\n", 0, start) + 1 and edit.end == end
    assert edit.new_text == "    return float(w) * float(h)"
    assert rewrite_edit(w(model), SOURCE, 5, 5, "x", 8, never) == "select the code to rewrite"
    _model_says(monkeypatch, rewrite, "return w * (")
    assert "does not parse" in str(rewrite_edit(w(model), SOURCE, start, end, "x", 8, never))
    _model_says(monkeypatch, rewrite, "return w * h")
    assert "unchanged" in str(rewrite_edit(w(model), SOURCE, start, end, "x", 8, never))
    header = SOURCE.index("def area(w, h):")
    _model_says(monkeypatch, rewrite, "def area(w):")
    result = rewrite_edit(w(model), SOURCE, header, header + len("def area(w, h):"), "x", 8, never)
    assert "area's signature" in str(result)


def _no_run(text: str) -> PytestRun:
    raise AssertionError("a candidate that fails verification must not be run")


def test_tests_file_is_verified(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    from pyserver.refactor import write_tests as wt

    _model_says(monkeypatch, wt, "assert area(2, 3) == 6\n")
    ran: list[str] = []
    new = write_tests(w(model), SOURCE, 5, "geometry.py", 32, never, lambda s: ran.append(s) or PASSED)
    assert isinstance(new, WrittenTests) and new.file.name == "test_geometry.py" and not new.appended
    assert new.file.text == "from geometry import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n"
    assert ran == [new.file.text] and new.candidates == 1  # all passed at once: no more candidates sampled
    assert Path("test_geometry.py").exists() is False  # nothing is written by the refactor itself
    _model_says(monkeypatch, wt, "assert area(2, \n")
    assert "does not parse" in str(write_tests(w(model), SOURCE, 5, "geometry.py", 32, never, _no_run))
    _model_says(monkeypatch, wt, "area(2, 3)\n")
    assert "assert nothing" in str(write_tests(w(model), SOURCE, 5, "geometry.py", 32, never, _no_run))


def test_a_docstring_may_repeat_a_phrase_twice(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    from pyserver.refactor import docstring

    said = "Scale the circle by the factor.\n\nA factor below one shrinks it; scale the circle by the factor to undo."
    _model_says(monkeypatch, docstring, said)
    assert isinstance(docstring_edit(w(model), SOURCE, 11, 24, never), TextEdit)


def test_explain(model: Model) -> None:
    text = explain(w(model), "return w * h", 16, never)
    assert isinstance(text, str) and text


@pytest.mark.parametrize("which", ["docstring", "rewrite", "tests", "explain"])
def test_workspace_context_leads_the_prompt(model: Model, which: str) -> None:
    context = "# lib/geometry.py\ndef rectangle(w, h):\n    return w * h\n\n"
    s = model.session()
    if which == "docstring":
        docstring_edit(LocalWriter(s), SOURCE, 10, 8, never, context)
    elif which == "rewrite":
        w = LocalWriter(s)
        rewrite_edit(w, SOURCE, SOURCE.index("return w"), SOURCE.index("\n\n\n@"), "use max", 8, never, context)
    elif which == "tests":
        write_tests(LocalWriter(s), SOURCE, 10, "shapes.py", 8, never, lambda text: PASSED, context, candidates=1)
    else:
        explain(LocalWriter(s), "return w * h", 8, never, context)
    prompt = model.tokenizer.decode(s.tokens)  # type: ignore[union-attr]
    assert context in prompt and prompt.index(context) < prompt.index("w * h" if which != "tests" else "def circle")


def test_runaway_repetition_is_cut(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    from pyserver.engine.generate import GenerationResult
    from pyserver.refactor import common

    class Said:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.result = GenerationResult(text="Compare a, b, b, b, b, b, b, b", stop_reason="max_tokens")

        def __iter__(self) -> Iterator[str]:
            yield from ("Compare a, b", ", b, b, b, b, b, b")

    monkeypatch.setattr(common, "Generation", Said)
    streamed: list[str] = []
    assert common.run(model.session(), [1], 8, [], never, on_text=streamed.append) == "Compare a, b"
    assert streamed == ["Compare a, b", "Compare a, b, b, b, b, b, b, b"]  # the stream is the raw text so far


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "produced nothing"),
        ("0.0 1.0 2.0 3.0 4.0 5.0 6.0 7.0 8.0 9.0 10.0", "nothing to say"),  # what the shipped model wrote once
        ("- The code below is a circle - The code below is a circle", "repeated itself"),  # in code-server
        ("Returns the area of a circle from its radius.", None),
    ],
)
def test_explanations_worth_showing(text: str, why: str | None) -> None:
    from pyserver.refactor.explain import explanation_problem

    got = explanation_problem(text)
    assert (got is None) if why is None else (got is not None and why in got)


@pytest.mark.parametrize(
    ("language", "said", "why"),
    [
        ("javascript", "return a + ;", "does not parse (line 2: missing identifier)"),
        ("go", "return a +", "does not parse"),
        ("javascript", "return a + b;", None),
        (None, "return a + ;", None),  # a language without a grammar: nothing to parse with
    ],
)
def test_rewrites_in_other_languages_must_parse(
    monkeypatch: pytest.MonkeyPatch, model: Model, language: str | None, said: str, why: str | None
) -> None:
    """tree-sitter's grammar for the index's other languages, as `ast` for Python."""
    from pyserver.refactor import rewrite

    source = (
        "function add(a, b) {\n  return a - b;\n}\n"
        if language != "go"
        else "func add(a, b int) int {\n  return a - b\n}\n"
    )
    _model_says(monkeypatch, rewrite, said)
    start = source.index("return")
    result = rewrite_edit(w(model), source, start, source.index("\n", start) + 1, "add", 16, never, "", language)
    if why is None:
        assert isinstance(result, TextEdit)
    else:
        assert isinstance(result, str) and why in result
