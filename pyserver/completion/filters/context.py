"""What the filters know about the cursor."""

from __future__ import annotations

from dataclasses import dataclass


def indent_of(line: str) -> int:
    """Columns of leading whitespace (a tab counts as 4)."""
    n = 0
    for ch in line:
        if ch == " ":
            n += 1
        elif ch == "\t":
            n += 4
        else:
            break
    return n


@dataclass(frozen=True)
class CursorContext:
    prefix: str  # document text before the cursor
    suffix: str  # document text after the cursor

    @property
    def line_prefix(self) -> str:
        return self.prefix[self.prefix.rfind("\n") + 1 :]

    @property
    def line_suffix(self) -> str:
        end = self.suffix.find("\n")
        return self.suffix if end < 0 else self.suffix[:end]

    @property
    def mid_line(self) -> bool:
        """Text on the cursor's line (before or after it): the user is inside a statement."""
        return bool(self.line_prefix.strip() or self.line_suffix.strip())

    @property
    def next_lines(self) -> list[str]:
        """The document's lines after the cursor's line."""
        return self.suffix.split("\n")[1:]
