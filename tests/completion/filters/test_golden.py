"""Golden cases for the whole filter pipeline (`apply_filters`, as the server runs it): one file per case in golden/.

A case file, plain text:

    # What the case checks, and why the expected text follows from the filters' rules (comment lines).
    max_lines: 3              optional: the max_lines setting (the server's default otherwise)
    === document              the document, with ║ at the cursor
    === raw                   what the model generated after the cursor (the typed part of the line excluded)
    === shown                 what the user is shown, or instead a bare `=== nothing shown`

A section's text is the lines between its header and the next header (or the end of the file), without the line
break that ends its last line. Where whitespace matters, ␣ stands for a space and ⇥ for a tab.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pyserver.completion.filters import CursorContext, apply_filters
from pyserver.server.settings import ServerSettings

GOLDEN = Path(__file__).parent / "golden"
CURSOR = "║"
SECTIONS = ("document", "raw", "shown", "nothing shown")


@dataclass(frozen=True)
class Case:
    ctx: CursorContext
    raw: str
    shown: str  # "" for nothing shown
    max_lines: int


def _visible(text: str) -> str:
    return text.replace("␣", " ").replace("⇥", "\t")


def parse_case(text: str) -> Case:
    options: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.removesuffix("\n").split("\n"):
        if line.startswith("=== "):
            name = line[4:].strip()
            if name not in SECTIONS or name in sections:
                raise ValueError(f"unknown or repeated section {line!r}")
            current = sections[name] = []
        elif current is not None:
            current.append(line)
        elif line.strip() and not line.startswith("#"):
            key, _, value = line.partition(":")
            options[key.strip()] = value.strip()
    if set(options) - {"max_lines"}:
        raise ValueError(f"unknown options {sorted(set(options) - {'max_lines'})}")
    if "document" not in sections or "raw" not in sections or ("shown" in sections) == ("nothing shown" in sections):
        raise ValueError("a case needs `document`, `raw` and one of `shown` / `nothing shown`")
    if sections.get("nothing shown"):
        raise ValueError("`nothing shown` has no text")
    document = _visible("\n".join(sections["document"]))
    if document.count(CURSOR) != 1:
        raise ValueError(f"the document needs exactly one {CURSOR}")
    prefix, suffix = document.split(CURSOR)
    return Case(
        CursorContext(prefix, suffix),
        _visible("\n".join(sections["raw"])),
        _visible("\n".join(sections.get("shown", []))),
        int(options.get("max_lines", ServerSettings().max_lines)),
    )


CASES = sorted(GOLDEN.glob("*.txt"))


def test_there_are_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = parse_case(path.read_text(encoding="utf-8"))
    assert apply_filters(case.raw, case.ctx, max_lines=case.max_lines) == case.shown


def test_format() -> None:
    case = parse_case(
        "# a comment\nmax_lines: 2\n=== document\ndef f():\n␣␣␣␣║\n\n=== raw\nx = 1⇥\n=== nothing shown\n"
    )
    assert case.ctx == CursorContext("def f():\n    ", "\n")
    assert (case.raw, case.shown, case.max_lines) == ("x = 1\t", "", 2)
    with pytest.raises(ValueError):
        parse_case("=== document\nno cursor\n=== raw\nx\n=== shown\nx\n")
    with pytest.raises(ValueError):
        parse_case("=== document\n║\n=== raw\nx\n=== shown\nx\n=== nothing shown\n")
