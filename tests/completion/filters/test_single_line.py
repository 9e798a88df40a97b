from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.single_line import single_line


def test_mid_line_keeps_one_line() -> None:
    assert single_line("b + 1)\nprint(x)", CursorContext("x = f(a, ", "")) == "b + 1)"
    assert single_line("foo(\n    1)", CursorContext("    ", ")\n")) == "foo("  # text after the cursor


def test_empty_line_keeps_block() -> None:
    assert single_line("a = 1\nb = 2", CursorContext("def f():\n    ", "\n")) == "a = 1\nb = 2"
