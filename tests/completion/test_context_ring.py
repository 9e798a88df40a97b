"""Extra context from other documents, picked by identifier overlap."""

from __future__ import annotations

from pyserver.completion.context_ring import CHUNK_LINES, ContextRing


def test_picks_similar_chunks_of_other_documents() -> None:
    ring = ContextRing()
    ring.add("file:///models.py", "class Invoice:\n    def total_amount(self):\n        return self.amount_due\n")
    ring.add("file:///net.py", "import socket\nsock = socket.create_connection(addr)\n")
    ring.add("file:///current.py", "invoice.total_amount()\n")
    picked = ring.pick("file:///current.py", "bill = Invoice()\nbill.total_amount(", budget_chars=10_000)
    assert [c.uri for c in picked] == ["file:///models.py"]  # its own document and unrelated code are left out


def test_budget_dedup_and_replacement() -> None:
    ring = ContextRing(size=4)
    body = "\n".join(f"value_{i} = helper_function({i})" for i in range(10))
    ring.add("file:///a.py", body)
    ring.add("file:///b.py", body)  # same text in another file: offered once
    assert len(ring.pick("file:///c.py", "helper_function(value_1)", budget_chars=10_000)) == 1
    assert ring.pick("file:///c.py", "helper_function(value_1)", budget_chars=10) == []
    long = "\n".join(f"line_{i} = {i}" for i in range(3 * CHUNK_LINES))
    ring.add("file:///d.py", long, around_line=10)
    ring.add("file:///d.py", long, around_line=20)  # overlapping chunk of the same document replaces the old one
    assert len([c for c in ring._ring if c.uri == "file:///d.py"]) == 1
