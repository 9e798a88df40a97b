from pyserver.completion.filters.brackets import balance_brackets
from pyserver.completion.filters.context import CursorContext


def test_suffix_already_closes() -> None:
    assert balance_brackets("a, b)", CursorContext("f(", ")")) == "a, b"
    assert balance_brackets("a, b)", CursorContext("f(", "")) == "a, b)"


def test_unopened_closer_is_cut() -> None:
    assert balance_brackets("x]) + 1", CursorContext("y = ", "")) == "x"
    assert balance_brackets("g(x) + [1]", CursorContext("y = ", "")) == "g(x) + [1]"
    assert balance_brackets("')'", CursorContext("s = ", "")) == "')'"  # inside a string
