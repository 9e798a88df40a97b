from pyserver.completion.filters.block_end import block_end
from pyserver.completion.filters.context import CursorContext


def test_ends_at_dedent_below_start() -> None:
    ctx = CursorContext("def f(xs):\n    ", "\n")
    s = "total = 0\n    for x in xs:\n        total += x\n    return total\ndef g():\n    pass"
    assert block_end(s, ctx) == "total = 0\n    for x in xs:\n        total += x\n    return total"


def test_ends_at_blank_line_pair() -> None:
    ctx = CursorContext("    ", "")
    assert block_end("a = 1\n    b = 2\n\n\n    c = 3", ctx) == "a = 1\n    b = 2"
    assert block_end("a = 1\n\n    b = 2", ctx) == "a = 1\n\n    b = 2"  # one blank line is fine


def test_single_line_untouched() -> None:
    assert block_end("x", CursorContext("", "")) == "x"
