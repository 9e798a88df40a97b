"""Identifiers split into their parts, the terms of the full-text index: `parse_http_header` and `parseHTTPHeader`
both become `parse http header` plus the whole name, so a query for either spelling, or for a part, finds both."""

from __future__ import annotations

import re

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# camelCase / PascalCase / ACRONYMWords boundaries and digit runs.
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
MIN_PART = 2  # single letters say nothing about code
# Keywords of the indexed languages: in nearly every chunk, so they only cost space.
STOP = frozenset(
    """
and as assert async await break case catch class const continue def del elif else enum except export extends false
finally fn for from func function go if impl import in interface is let lambda loop match mod mut new nil none nonlocal
not null or package pass pub raise return self static struct super switch this throw true try type use var void while
with yield
""".split()
)

# Words of natural-language queries that say nothing about which code is meant.
ENGLISH_STOP = frozenset(
    """
a about all also an any are at be been but by can could do does doing each for get gets give has have how i into it
its me more most much my of on one only other our should so some such than that the their them then there these they
this those through to too up us very was we were what when where which while who why will would you your
""".split()
)


def split_identifier(name: str) -> list[str]:
    """Lower-case parts of one identifier, without the whole name (`HTTPServer_v2` -> http, server, v2... )."""
    parts: list[str] = []
    for piece in name.split("_"):
        parts.extend(p.lower() for p in _PART.findall(piece))
    return [p for p in parts if len(p) >= MIN_PART]


def identifiers(text: str) -> list[str]:
    return _IDENT.findall(text)


def identifier_terms(text: str) -> list[str]:
    """Every identifier of the text as its whole lower-cased name plus its parts, in order of appearance."""
    out: list[str] = []
    for name in identifiers(text):
        whole = name.lower().strip("_")
        parts = split_identifier(name)
        if len(whole) >= MIN_PART and parts != [whole] and whole not in STOP:
            out.append(whole)
        out.extend(p for p in parts if p not in STOP)
    return out


def query_terms(text: str) -> list[str]:
    """Terms of a natural-language or code query: identifier terms without English filler words."""
    return [t for t in identifier_terms(text) if t not in ENGLISH_STOP]


def fts_query(terms: list[str], limit: int = 64) -> str:
    """An FTS5 MATCH expression that ORs the distinct terms (quoted, so no term is read as an operator)."""
    seen: dict[str, None] = {}
    for t in terms:
        if t.isascii() and t.replace("_", "").isalnum():
            seen.setdefault(t, None)
        if len(seen) >= limit:
            break
    return " OR ".join(f'"{t}"' for t in seen)
