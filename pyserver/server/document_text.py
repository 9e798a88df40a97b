"""An open document's text as a table of lines, edited in place: a keystroke costs the lines it touches, not the
document (pygls rebuilds the whole text for every change: ~88 ms a keystroke in a 20 MB file).

- `LineTable`: the lines as LSP counts them (a line ends at `\\n`, `\\r\\n` or `\\r`, and nothing else; the text after
  the last break, maybe empty, is the last line), each kept with its break. An edit replaces the lines it spans;
  the whole text is joined only when asked for, and kept until the next edit; the character count is kept as it
  goes; line starts are summed lazily from the first line an edit touched.
- `LineDocument`: pygls' TextDocument over a LineTable (what the workspace makes for every document, open or read
  from disk). Positions are clamped as LSP says: a line past the last is the end of the document, a character past
  a line's end is that end, and the client's position is never changed (pygls' codec writes the clamped character
  into it, and puts a character past the end of the last line one before its end). pygls also splits lines at
  form feeds, U+2028 and the other separators str.splitlines knows, which editors do not: an edit after one would
  land on the wrong line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import Any, overload

from lsprotocol import types as t
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import ServerTextPosition

_BREAK = re.compile(r"(\r\n|\r|\n)")


def split_lines(text: str) -> list[str]:
    """LSP's lines of `text`, each with its break; the last (maybe empty) has none."""
    parts = _BREAK.split(text)  # content, break, content, break, ..., content
    lines = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    lines.append(parts[-1])
    return lines


def content_length(line: str) -> int:
    """The line's length without its break."""
    if line.endswith("\r\n"):
        return len(line) - 2
    return len(line) - 1 if line.endswith(("\n", "\r")) else len(line)


class LineTable:
    def __init__(self, text: str = "") -> None:
        self._lines = split_lines(text)
        self._chars = len(text)
        self._text: str | None = text
        self._starts: list[int] = [0]  # _starts[i]: the offset of line i, valid for i <= _valid
        self._valid = 0

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self._lines)
        return self._text

    @property
    def chars(self) -> int:
        return self._chars

    @property
    def lines(self) -> list[str]:
        """The lines (read-only by convention: edits go through `replace`)."""
        return self._lines

    def __len__(self) -> int:
        return len(self._lines)

    def start(self, line: int) -> int:
        """The offset of line `line` (0 <= line < len(self))."""
        if line > self._valid:
            v = self._valid
            starts = accumulate(map(len, self._lines[v:line]), initial=self._starts[v])
            self._starts[v:] = starts  # (entries past line, from before an edit, are dropped with the rest)
            self._valid = line
        return self._starts[line]

    def replace(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """Replaces the text from (line, column) `start` to `end` (code points, each within its line's content,
        start <= end) with `text`."""
        (sl, sc), (el, ec) = start, end
        lines = self._lines
        piece = lines[sl][:sc] + text + lines[el][ec:]
        # A lone \r before the piece and a \n at its start are one break now, and the same at its end.
        if sl > 0 and piece.startswith("\n") and lines[sl - 1].endswith("\r"):
            sl -= 1
            piece = lines[sl] + piece
        if el + 1 < len(lines) and piece.endswith("\r") and lines[el + 1].startswith("\n"):
            el += 1
            piece += lines[el]
        new = split_lines(piece)
        if el + 1 < len(lines):  # the piece ends with a break: the next line starts after it
            new.pop()
        self._chars += sum(map(len, new)) - sum(map(len, lines[sl : el + 1]))
        lines[sl : el + 1] = new
        self._text = None
        self._valid = min(self._valid, sl)


class _Lines(Sequence[str]):
    """pygls' `lines` over a table: every line with its break, without the empty last line after a final break
    (`str.splitlines(True)`'s shape, which pygls' callers expect), in place of a copy."""

    def __init__(self, table: LineTable) -> None:
        self._all = table.lines
        self._n = len(self._all) - (1 if self._all[-1] == "" else 0)

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...

    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            r = range(self._n)[i]  # (negative and open bounds resolved against this length)
            return self._all[r.start : r.stop] if r.step == 1 else [self._all[k] for k in r]
        if not -self._n <= i < self._n:
            raise IndexError("line index out of range")
        return self._all[i % self._n]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all[: self._n])


class LineDocument(TextDocument):
    def __init__(self, uri: str, source: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(uri, source, *args, **kwargs)
        self._table = LineTable(source or "")
        self._source = None  # (the table holds the text)

    @property
    def source(self) -> str:
        return self._table.text

    @property
    def lines(self) -> Sequence[str]:
        return _Lines(self._table)

    @property
    def chars(self) -> int:
        """len(self.source), without joining it."""
        return self._table.chars

    @property
    def line_count(self) -> int:
        """Lines as LSP counts them (an empty document has one)."""
        return len(self._table)

    def _apply_full_change(self, change: t.TextDocumentContentChangeEvent) -> None:
        self._table = LineTable(change.text)

    def _apply_incremental_change(self, change: t.TextDocumentContentChangePartial) -> None:
        start, end = self._point(change.range.start), self._point(change.range.end)
        self._table.replace(start, max(start, end), change.text)

    def _point(self, position: t.Position) -> tuple[int, int]:
        """(line, code point within the line's content) of a client position, clamped as LSP says."""
        lines = self._table.lines
        if position.line >= len(lines):
            return len(lines) - 1, content_length(lines[-1])
        line = lines[position.line]
        n, target = content_length(line), position.character
        if target >= 4 * n:  # (no encoding spends more than 4 units on a character)
            return position.line, n
        units, count = 0, self.position_codec.client_num_units
        for i in range(n):  # (position_codec's count, without its clamping)
            if units >= target:
                return position.line, i
            units += count(line[i])
        return position.line, n

    def clamped(self, position: t.Position) -> t.Position:
        """The client position the document has at `position` (the same one unless it is past an end)."""
        line, column = self._point(position)
        text = self._table.lines[line]
        return t.Position(line=line, character=self.position_codec.client_num_units(text[:column]))

    def offset_at_position(self, client_position: t.Position) -> int:
        line, column = self._point(client_position)
        return self._table.start(line) + column

    def offset_at_server_position(self, server_position: ServerTextPosition) -> int:
        lines = self._table.lines
        if server_position.line >= len(lines):
            return self._table.chars
        return self._table.start(server_position.line) + server_position.character

    def position_from_client_units(self, position: t.Position) -> ServerTextPosition:
        return ServerTextPosition(*self._point(position))


def chars(doc: TextDocument) -> int:
    """The document's length in characters (without joining its text, for a LineDocument)."""
    return doc.chars if isinstance(doc, LineDocument) else len(doc.source)


def line_count(doc: TextDocument) -> int:
    """The document's lines as LSP counts them (an empty document has one; so does the empty line after a final
    line break)."""
    if isinstance(doc, LineDocument):
        return doc.line_count
    return len(split_lines(doc.source))


def clamped(doc: TextDocument, position: t.Position) -> t.Position:
    """`position` clamped to the document (a line past the last: its end; a character past a line's end: that end),
    as a position to send back to the client."""
    if isinstance(doc, LineDocument):
        return doc.clamped(position)
    return doc.client_position_at_offset(doc.offset_at_position(t.Position(position.line, position.character)))
