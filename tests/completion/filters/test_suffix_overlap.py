from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.suffix_overlap import no_suffix_repeat


def test_does_not_restate_rest_of_line() -> None:
    assert no_suffix_repeat("a, b):", CursorContext("def f(", "):\n    pass")) == "a, b"
    assert no_suffix_repeat("x + 1", CursorContext("y = ", "")) == "x + 1"


def test_stops_before_the_next_line() -> None:
    ctx = CursorContext("def f():\n    ", "\n    return total\n")
    assert no_suffix_repeat("total = 0\n    return total", ctx) == "total = 0"
