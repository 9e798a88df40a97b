from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.suffix_overlap import no_suffix_repeat


def test_does_not_restate_rest_of_line() -> None:
    assert no_suffix_repeat("a, b):", CursorContext("def f(", "):\n    pass")) == "a, b"
    assert no_suffix_repeat("x + 1", CursorContext("y = ", "")) == "x + 1"


def test_stops_before_the_next_line() -> None:
    ctx = CursorContext("def f():\n    ", "\n    return total\n")
    assert no_suffix_repeat("total = 0\n    return total", ctx) == "total = 0"


def test_keeps_a_closer_the_suggestion_opened() -> None:
    ctx = CursorContext("    print(", ")\n")
    assert no_suffix_repeat("len(items)", ctx) == "len(items)"
    assert no_suffix_repeat("len(items))", ctx) == "len(items)"


def test_next_line_compared_with_its_indentation() -> None:
    ctx = CursorContext("function f(xs) {\n  ", "\n}\n")
    assert no_suffix_repeat("if (x) {\n    g();\n  }", ctx) == "if (x) {\n    g();\n  }"  # its own block's }
    ctx = CursorContext("def f():\n    ", "\n    return total\n")
    assert no_suffix_repeat("return total", ctx) == ""  # the first line at an empty line is a whole line
    assert no_suffix_repeat("total", CursorContext("    return ", "\n    return total\n")) == "total"
