"""The suggestion LRU and its type-ahead forwarding."""

from __future__ import annotations

from pyserver.completion.cache import MAX_TYPED, SuggestionCache


def test_type_ahead_forwards_the_rest() -> None:
    c = SuggestionCache()
    c.put("a.py", "x = compute(", ")\n", "alpha, beta")
    assert c.get("a.py", "x = compute(", ")\n") == "alpha, beta"
    assert c.get("a.py", "x = compute(al", ")\n") == "pha, beta"
    assert c.get("a.py", "x = compute(alpha, beta", ")\n") is None  # typed it all: nothing left
    assert c.get("a.py", "x = compute(ax", ")\n") is None  # typed something else
    assert c.get("a.py", "x = compute(al", "]\n") is None  # different text after the cursor
    assert c.get("b.py", "x = compute(", ")\n") is None  # another document


def test_capacity_and_limits() -> None:
    c = SuggestionCache(capacity=2)
    for i in range(3):
        c.put("a.py", f"p{i}", "", "suggestion")
    assert c.get("a.py", "p0", "") is None and c.get("a.py", "p2", "") == "suggestion"
    long = "y" * (MAX_TYPED + 10)
    c.put("a.py", "q", "", long)
    assert c.get("a.py", "q" + long[: MAX_TYPED + 1], "") is None
    c.put("a.py", "z", "", "")
    assert c.get("a.py", "z", "") is None  # empty suggestions are not kept
