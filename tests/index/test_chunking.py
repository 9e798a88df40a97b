"""Chunks cut at definitions (line ranges checked by hand) and the symbols table."""

from __future__ import annotations

from pyserver.index.chunking import MAX_CHUNK_LINES, WINDOW_LINES, Symbol, chunk_file

PY = '''"""Module doc."""
import os


def load(path):
    return parse(open(path).read())


@cache
def parse(text):
    return text.split()


class Small:
    def m(self):
        return helper(1)
'''


def test_python_definitions_and_gaps() -> None:
    chunks, symbols = chunk_file(PY, "python")
    got = [(c.start_line, c.end_line, c.kind, c.symbol) for c in chunks]
    # Blank-only gaps make no chunk; the decorator belongs to its function.
    assert got == [
        (1, 4, "block", ""),
        (5, 6, "function", "load"),
        (9, 11, "function", "parse"),
        (14, 16, "class", "Small"),
    ]
    assert chunks[1].text == "def load(path):\n    return parse(open(path).read())"
    defs = {(s.name, s.line) for s in symbols if s.kind == "def"}
    assert defs == {("load", 5), ("parse", 10), ("Small", 14), ("m", 15)}
    refs = {(s.name, s.line) for s in symbols if s.kind == "ref"}
    assert refs == {("parse", 6), ("read", 6), ("open", 6), ("split", 11), ("helper", 16)}


def test_a_large_class_is_cut_into_its_methods() -> None:
    body = "".join(f"    def m{i}(self):\n" + "        x = 1\n" * 8 + "\n" for i in range(10))
    text = "class Big:\n    '''Doc.'''\n\n" + body
    chunks, _ = chunk_file(text, "python")
    kinds = [(c.kind, c.symbol) for c in chunks]
    assert kinds[0] == ("class", "Big") and chunks[0].start_line == 1
    assert [s for k, s in kinds if k == "method"] == [f"Big.m{i}" for i in range(10)]
    assert all(c.end_line - c.start_line < MAX_CHUNK_LINES for c in chunks)


def test_a_long_function_is_cut_into_windows() -> None:
    text = "def long():\n" + "    x = 1\n" * (2 * MAX_CHUNK_LINES)
    chunks, _ = chunk_file(text, "python")
    assert [(c.start_line, c.end_line) for c in chunks] == [
        (1, MAX_CHUNK_LINES),
        (MAX_CHUNK_LINES + 1, 2 * MAX_CHUNK_LINES),
        (2 * MAX_CHUNK_LINES + 1, 2 * MAX_CHUNK_LINES + 1),
    ]
    assert {c.symbol for c in chunks} == {"long"}


def test_other_grammars() -> None:
    ts = "export class A {\n  m(x: number) { return f(x) }\n}\nconst g = (a) => a.b(1)\ninterface I { x: number }\n"
    chunks, symbols = chunk_file(ts, "typescript")
    assert [(c.kind, c.symbol) for c in chunks] == [("class", "A"), ("function", "g"), ("type", "I")]
    assert {s.name for s in symbols if s.kind == "def"} == {"A", "m", "g", "I"}
    assert {s.name for s in symbols if s.kind == "ref"} == {"f", "b"}
    go = "package m\n\ntype T struct{}\n\nfunc (t *T) M() { fmt.Println(1) }\n"
    chunks, symbols = chunk_file(go, "go")
    assert [(c.kind, c.symbol) for c in chunks] == [("block", ""), ("type", "T"), ("method", "M")]
    assert Symbol("Println", "ref", 5) in symbols
    rs = "struct P { x: i32 }\nimpl P {\n  fn get(&self) -> i32 { helper(self.x) }\n}\n"
    chunks, symbols = chunk_file(rs, "rust")
    assert [(c.kind, c.symbol) for c in chunks] == [("type", "P"), ("class", "P")]
    assert Symbol("get", "def", 3) in symbols and Symbol("helper", "ref", 3) in symbols


def test_languages_without_a_grammar_get_line_windows() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 2 * WINDOW_LINES + 11))
    chunks, symbols = chunk_file(text, "markdown")
    assert [(c.start_line, c.end_line, c.kind) for c in chunks] == [
        (1, WINDOW_LINES, "window"),
        (WINDOW_LINES + 1, 2 * WINDOW_LINES, "window"),
        (2 * WINDOW_LINES + 1, 2 * WINDOW_LINES + 10, "window"),
    ]
    assert symbols == []
    assert chunk_file("", "python") == ([], [])
    assert chunk_file("def broken(:\n  pass\n", "python")[0]  # a syntax error still gives chunks
