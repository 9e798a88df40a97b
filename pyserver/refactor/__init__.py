"""Palette refactors: each turns (document text, selection) into text to show or an edit to apply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextEdit:
    """Replace text[start:end] (character offsets) with new_text."""

    start: int
    end: int
    new_text: str


@dataclass(frozen=True)
class NewFile:
    """A file to create (or extend) beside the document."""

    name: str
    text: str
