"""Open documents as line tables (pyserver/server/document_text.py), against a reference written from LSP's rules
here: a line ends at \\n, \\r\\n or \\r (nothing else); a position's character counts UTF-16 code units; a line past the
last means the end of the document, a character past a line's end means that end. Edits of random documents (with
the separators pygls wrongly splits at, astral characters, lone \\r) must give the reference's text, lines and
offsets after every edit; and a keystroke in a large document must not cost the document."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types as t
from pygls.workspace import TextDocument

from pyserver.server.document_text import LineDocument, chars, clamped, split_lines

URI = "file:///work/doc.py"


# ---- the reference --------------------------------------------------------------------------------------------------


def ref_lines(text: str) -> list[tuple[int, int]]:
    """(start, end of content) of each LSP line."""
    out, start, i = [], 0, 0
    while i < len(text):
        if text[i] in "\r\n":
            brk = 2 if text[i : i + 2] == "\r\n" else 1
            out.append((start, i))
            start = i = i + brk
        else:
            i += 1
    out.append((start, len(text)))
    return out


def utf16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def ref_offset(text: str, line: int, character: int) -> int:
    lines = ref_lines(text)
    if line >= len(lines):
        return len(text)
    start, end = lines[line]
    units = 0
    for i in range(start, end):
        if units >= character:
            return i
        units += utf16(text[i])
    return end


def ref_position(text: str, offset: int) -> tuple[int, int]:
    for n, (start, end) in enumerate(ref_lines(text)):
        if start <= offset <= end:
            return n, utf16(text[start:offset])
    raise AssertionError(offset)


# ---- what is generated ----------------------------------------------------------------------------------------------

pieces = st.sampled_from(
    ["a", "bc", " ", "\n", "\r\n", "\r", "\x0c", "\u2028", "\x85", "\x1c", "é", "😋", "\t", "def "]
)
texts = st.lists(pieces, max_size=30).map("".join)
numbers = st.integers(0, 12) | st.sampled_from([2**31 - 1, 10**6])
positions = st.builds(t.Position, line=numbers, character=numbers)
edits = st.tuples(positions, positions, texts)


def new_doc(text: str) -> LineDocument:
    return LineDocument(URI, text, version=1)


def change(start: t.Position, end: t.Position, text: str) -> t.TextDocumentContentChangePartial:
    return t.TextDocumentContentChangePartial(range=t.Range(start=start, end=end), text=text)


@settings(max_examples=600, deadline=None)
@given(text=texts, steps=st.lists(edits, max_size=8))
def test_edits_give_the_references_text_lines_and_offsets(text: str, steps: list[tuple[t.Position, ...]]) -> None:
    doc = new_doc(text)
    for start, end, new in steps:  # type: ignore[misc]
        a = ref_offset(text, start.line, start.character)
        b = max(a, ref_offset(text, end.line, end.character))
        before = (start.line, start.character)
        doc.apply_change(change(start, end, new))
        text = text[:a] + new + text[b:]
        assert (start.line, start.character) == before  # the client's position is never written to
        assert doc.source == text and chars(doc) == len(text)
        assert doc.line_count == len(ref_lines(text))
        bounds = [start for start, _ in ref_lines(text)] + [len(text)]
        whole_lines = [text[a:b] for a, b in zip(bounds, bounds[1:])]
        assert list(doc.lines) == [x for x in whole_lines if x]  # (str.splitlines' shape: no empty last line)
        for line, character in [(0, 0), (start.line, start.character), (end.line, end.character)]:
            at = t.Position(line=line, character=character)
            offset = ref_offset(text, line, character)
            assert doc.offset_at_position(at) == offset
            got = clamped(doc, at)
            assert (got.line, got.character) == ref_position(text, offset)


@given(text=texts)
def test_split_lines_is_lsps(text: str) -> None:
    lines = split_lines(text)
    assert "".join(lines) == text
    starts = [0]
    for x in lines[:-1]:
        starts.append(starts[-1] + len(x))
    assert starts == [start for start, _ in ref_lines(text)]


def test_pygls_lines_shape() -> None:
    """`lines` keeps str.splitlines' shape (no empty last line after a final break) for pygls' callers."""
    for text in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n\n"]:
        doc = new_doc(text)
        assert list(doc.lines) == text.splitlines(True)
        assert list(doc.lines[-2:]) == text.splitlines(True)[-2:]
        assert list(doc.lines[1:]) == text.splitlines(True)[1:]
        assert list(doc.lines[::-1]) == text.splitlines(True)[::-1]


def test_what_pygls_got_wrong() -> None:
    """A form feed is no line break to an editor (pygls put the edit on the wrong line); a character past the end of
    the last line is its end (pygls: one before it)."""
    doc = new_doc("a\x0cb\nc")
    doc.apply_change(change(t.Position(line=1, character=0), t.Position(line=1, character=0), "X"))
    assert doc.source == "a\x0cb\nXc"
    pygls = TextDocument(URI, "a\x0cb\nc")
    pygls.apply_change(change(t.Position(line=1, character=0), t.Position(line=1, character=0), "X"))
    assert pygls.source != "a\x0cb\nXc"  # (the reason for the table)
    doc = new_doc("abc")
    huge = t.Position(line=0, character=2**31 - 1)
    assert doc.offset_at_position(huge) == 3 and clamped(doc, huge) == t.Position(line=0, character=3)
    assert huge.character == 2**31 - 1
    assert clamped(doc, t.Position(line=2**31 - 1, character=5)) == t.Position(line=0, character=3)


def test_a_keystroke_touches_only_its_line() -> None:
    """The edit replaces the line it is on: the other lines are the same objects as before, and the whole text is
    not joined until someone asks for it (pygls rebuilt all of it per change). Speed: `python -m pyserver bench
    documents`."""
    line = "    total = compute(values, weight=0.5)  # x\n"
    doc = new_doc(line * 100_000)
    before = list(doc.lines)
    pos = t.Position(line=50_000, character=10)
    doc.apply_change(change(pos, pos, "y"))
    after = doc.lines
    assert all(after[i] is before[i] for i in (0, 1, 49_999, 50_001, 99_999))
    assert after[50_000] == line[:10] + "y" + line[10:]
    assert doc._table._text is None  # (not joined)
    assert chars(doc) == len(line) * 100_000 + 1
    assert doc.source.count("y") == 1
