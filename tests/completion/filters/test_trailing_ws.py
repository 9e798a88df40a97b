from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.trailing_ws import strip_trailing_whitespace


def test_strips() -> None:
    assert strip_trailing_whitespace("a = 1   \n  b  \n\n\n", CursorContext("", "")) == "a = 1\n  b"
