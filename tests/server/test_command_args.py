"""The sidecar commands' arguments: what the extension sends reads into the typed objects; anything malformed is
an InvalidParams error that says what is wrong."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from lsprotocol import types as t

from pyserver.server.command_args import (
    AcceptanceArgs,
    ArgumentError,
    DocstringArgs,
    ExplainArgs,
    ModelIdArgs,
    RewriteArgs,
    SearchArgs,
    WriteTestsArgs,
    parse,
)

URI = "file:///work/demo.py"
# What the extension's palette commands send (extension/src/common/commands.ts: the selection and the cursor).
WHERE = {
    "uri": URI,
    "range": {"start": {"line": 1, "character": 4}, "end": {"line": 3, "character": 0}},
    "position": {"line": 3, "character": 0},
}
POSITION_NEEDED = 'needs a position {"line": n, "character": n} (integers, 0 or more)'
RANGE = t.Range(start=t.Position(line=1, character=4), end=t.Position(line=3, character=0))


EXPECTED_DOCSTRING = 'expected one argument {"uri": ..., "position": ..., "mode": ..., "force": ..., "preview": ...}'


@pytest.mark.parametrize(
    ("kind", "arg", "expected"),
    [
        (ExplainArgs, WHERE, ExplainArgs(uri=URI, range=RANGE)),
        (DocstringArgs, WHERE, DocstringArgs(uri=URI, position=t.Position(line=3, character=0))),
        (WriteTestsArgs, WHERE, WriteTestsArgs(uri=URI, position=t.Position(line=3, character=0))),
        (
            RewriteArgs,
            WHERE | {"instruction": "use a loop"},
            RewriteArgs(uri=URI, range=RANGE, instruction="use a loop", position=t.Position(line=3, character=0)),
        ),
        (
            RewriteArgs,
            {"uri": URI, "range": WHERE["range"], "instruction": "x"},
            RewriteArgs(uri=URI, range=RANGE, instruction="x", position=None),
        ),
        (
            RewriteArgs,
            {"uri": URI, "range": WHERE["range"], "instruction": "x", "position": None},
            RewriteArgs(uri=URI, range=RANGE, instruction="x", position=None),
        ),
        (AcceptanceArgs, {"uri": URI, "event": "accepted_word"}, AcceptanceArgs(uri=URI, event="accepted_word")),
        (ModelIdArgs, {"id": "tiny-gguf"}, ModelIdArgs(id="tiny-gguf")),
        (SearchArgs, {"query": "polygon perimeter", "k": 5}, SearchArgs(query="polygon perimeter", k=5)),
        (SearchArgs, {"query": "polygon"}, SearchArgs(query="polygon", k=10)),
    ],
)
def test_good_arguments(kind: type[Any], arg: dict[str, Any], expected: Any) -> None:
    assert parse(kind, (arg,)) == expected


@pytest.mark.parametrize(("k", "count"), [(5, 5), (100, 100), (0, 10), (101, 10), (-3, 10)])
def test_search_count_outside_1_to_100_is_10(k: int, count: int) -> None:
    assert parse(SearchArgs, ({"query": "q", "k": k},)).count == count


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        (DocstringArgs, (), EXPECTED_DOCSTRING),
        (DocstringArgs, ("not a dict",), EXPECTED_DOCSTRING),
        (DocstringArgs, (WHERE, WHERE), "expected one argument"),
        (DocstringArgs, ({"position": WHERE["position"]},), "'uri' is missing"),
        (DocstringArgs, ({"uri": 7, "position": WHERE["position"]},), "'uri' needs a string, not 7"),
        (DocstringArgs, ({"uri": URI},), "'position' is missing"),
        (DocstringArgs, ({"uri": URI, "position": "here"},), f"'position' {POSITION_NEEDED}, not 'here'"),
        (DocstringArgs, ({"uri": URI, "position": {"line": 1}},), f"'position' {POSITION_NEEDED}, not {{'line': 1}}"),
        (DocstringArgs, ({"uri": URI, "position": {"line": True, "character": 0}},), "'position' needs a position"),
        (DocstringArgs, ({"uri": URI, "position": {"line": -1, "character": 0}},), "'position' needs a position"),
        (ExplainArgs, ({"uri": URI, "range": [0, 1]},), "'range' needs 'start' and 'end' positions"),
        (
            ExplainArgs,
            ({"uri": URI, "range": {"start": {"line": 0, "character": 0}}},),
            f"'range.end' {POSITION_NEEDED}, not None",
        ),
        (RewriteArgs, (WHERE,), "'instruction' is missing"),
        (RewriteArgs, (WHERE | {"instruction": "  "},), "rewrite needs an 'instruction'"),
        (RewriteArgs, (WHERE | {"instruction": "x", "position": 3},), "'position' needs a position"),
        (AcceptanceArgs, ({"uri": URI, "event": 1},), "'event' needs a string, not 1"),
        (ModelIdArgs, ({},), "'id' is missing"),
        (ModelIdArgs, ({"id": 5},), "'id' needs a string, not 5"),
        (SearchArgs, ({"k": 3},), "'query' is missing"),
        (SearchArgs, ({"query": " "},), "search needs a non-empty 'query'"),
        (SearchArgs, ({"query": "q", "k": "5"},), "'k' needs an integer, not '5'"),
        (SearchArgs, ({"query": "q", "k": True},), "'k' needs an integer, not True"),
    ],
)
def test_malformed_arguments(kind: type[Any], args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ArgumentError) as error:
        parse(kind, args)
    assert message in error.value.message
    assert error.value.code == -32602  # the client gets InvalidParams


def test_every_command_handler_has_resolvable_annotations() -> None:
    """pygls reads a command handler's annotations (to structure typed arguments) when the command runs: a name
    that does not resolve at run time fails every call of that command."""
    from pyserver.server.server import COMMANDS

    for handler in COMMANDS.values():
        typing.get_type_hints(handler)
