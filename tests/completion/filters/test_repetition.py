from pyserver.completion.filters.context import CursorContext
from pyserver.completion.filters.repetition import cut_repetition

CTX = CursorContext("", "")


def test_repeated_lines() -> None:
    assert cut_repetition("x = 1\nx = 1\nx = 1\nx = 1", CTX) == "x = 1"
    assert cut_repetition("a\nb\na\nb", CTX) == "a\nb\na\nb"


def test_looping_tail() -> None:
    assert cut_repetition("print(________________________)", CTX) == "print(_"
    assert cut_repetition("f(, , , , , , , ,", CTX) == "f(, "
    assert cut_repetition("name = 'abcabc'", CTX) == "name = 'abcabc'"  # two repeats are normal text
    assert cut_repetition("# ------------------", CTX) == "# ------------------"  # a comment ruler
