"""The sidecar commands' arguments: the one JSON object each command takes, read into a typed object.

`parse(Kind, args)` checks every field's type against the dataclass (str, int, an LSP Position or Range; a field
with a default, or typed `X | None`, may be left out or null) and ignores keys it does not know (the editor sends
the selection's range and the cursor's position with every refactor). Anything malformed raises `ArgumentError`,
which the client gets as an InvalidParams error response that says what is wrong, rather than a traceback.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class ArgumentError(JsonRpcInvalidParams):
    """A command's argument is malformed (the message says how)."""


@dataclass(frozen=True)
class ExplainArgs:
    """ryzanstein.sidecar.explain: the selection to explain (empty: its start line)."""

    uri: str
    range: t.Range
    force: bool = False  # run even where the model is known to be too weak for it (capability.py)
    stream: str | None = None  # a token: the explanation so far comes in `ryzanstein/explanation` notifications


@dataclass(frozen=True)
class DocstringArgs:
    """ryzanstein.sidecar.docstring: the function at the cursor gets a docstring ("add", refused when it has one)
    or a new one for the one it has ("update")."""

    uri: str
    position: t.Position
    mode: str = "add"
    force: bool = False
    # true: answer with the edit and the proposed text for the client to preview and apply (VS Code, below);
    # false: send it through workspace/applyEdit (needsConfirmation annotations), as any LSP client expects
    preview: bool = False


@dataclass(frozen=True)
class WriteTestsArgs:
    """ryzanstein.sidecar.writeTests: tests for the function at the cursor, in a new file beside the document."""

    uri: str
    position: t.Position
    force: bool = False
    preview: bool = False


@dataclass(frozen=True)
class RewriteArgs:
    """ryzanstein.sidecar.rewrite: the selection rewritten by the instruction. `position` (the cursor; else the
    selection's start) is where the workspace context is gathered around."""

    uri: str
    range: t.Range
    instruction: str
    position: t.Position | None = None
    force: bool = False
    preview: bool = False

    def __post_init__(self) -> None:
        if not self.instruction.strip():
            raise ArgumentError("rewrite needs an 'instruction'")


@dataclass(frozen=True)
class AcceptanceArgs:
    """ryzanstein.sidecar.acceptance: the user took (part of) the suggestion last shown in that document;
    `event`: "accepted" | "accepted_word" | "accepted_line"."""

    uri: str
    event: str


@dataclass(frozen=True)
class ModelIdArgs:
    """ryzanstein.sidecar.download and cancelDownload: a registry model's id."""

    id: str


@dataclass(frozen=True)
class SearchArgs:
    """ryzanstein.sidecar.search: the best index hits for `query`, `k` of them (outside 1..100: 10, see `count`)."""

    query: str
    k: int = 10

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise ArgumentError("search needs a non-empty 'query'")

    @property
    def count(self) -> int:
        return self.k if 0 < self.k <= 100 else 10


A = TypeVar("A", bound="DataclassInstance")


def parse(kind: type[A], args: Sequence[Any]) -> A:
    """A command's arguments (`*args` as the client sent them: one JSON object) as a `kind`."""
    fields = dataclasses.fields(kind)
    if len(args) != 1 or not isinstance(args[0], dict):
        shape = ", ".join(f'"{f.name}": ...' for f in fields)
        raise ArgumentError(f"expected one argument {{{shape}}}")
    hints = typing.get_type_hints(kind)
    values = {}
    for f in fields:
        value = args[0].get(f.name)
        if value is not None:
            values[f.name] = _read(f.name, hints[f.name], value)
        elif f.default is dataclasses.MISSING:
            if not _optional(hints[f.name]):
                raise ArgumentError(f"'{f.name}' is missing")
            values[f.name] = None
    return kind(**values)


def _optional(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _read(name: str, hint: Any, value: Any) -> Any:
    if _optional(hint):
        (hint,) = (h for h in typing.get_args(hint) if h is not type(None))
    if hint is t.Position:
        return _position(name, value)
    if hint is t.Range:
        if not isinstance(value, dict):
            raise ArgumentError(f"'{name}' needs 'start' and 'end' positions")
        return t.Range(
            start=_position(f"{name}.start", value.get("start")), end=_position(f"{name}.end", value.get("end"))
        )
    if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ArgumentError(f"'{name}' needs an integer, not {value!r}")
    if hint is bool and not isinstance(value, bool):
        raise ArgumentError(f"'{name}' needs true or false, not {value!r}")
    if hint is str and not isinstance(value, str):
        raise ArgumentError(f"'{name}' needs a string, not {value!r}")
    return value


def _position(name: str, value: Any) -> t.Position:
    if not isinstance(value, dict) or not all(_natural(value.get(k)) for k in ("line", "character")):
        raise ArgumentError(
            f'\'{name}\' needs a position {{"line": n, "character": n}} (integers, 0 or more), not {value!r}'
        )
    return t.Position(line=value["line"], character=value["character"])


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
