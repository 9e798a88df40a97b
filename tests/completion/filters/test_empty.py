from pyserver.completion.filters import apply_filters
from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.empty import drop_empty


def test_drops_whitespace_only() -> None:
    assert drop_empty(" \n\t", CursorContext("", "")) == ""
    assert drop_empty("x", CursorContext("", "")) == "x"


def test_pipeline_end_to_end() -> None:
    ctx = CursorContext("def f(xs):\n    total = sum(", ")\n    return total\n")
    assert apply_filters("xs))  \nprint(1)", ctx) == "xs"
    assert apply_filters("   ", ctx) == ""


def test_max_lines_cut_leaves_no_blank_line() -> None:
    ctx = CursorContext("class A:\n    ", "\n")
    assert apply_filters("x = 1\n\n    y = 2", ctx, max_lines=2) == "x = 1"
