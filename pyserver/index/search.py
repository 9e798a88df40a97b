"""Queries over the index.

- Completion context (latency first, no embeddings): the names used near the cursor -> their definitions, then
  BM25 over the split identifiers of the text before the cursor; deduplicated, packed within a character budget.
- Text queries (natural language, refactors): Hamming top-N over the binary signatures (through the router at
  large scale), rescored with the int8 vectors, fused with BM25 by reciprocal rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyserver.index.embedder import MiniLM, binary_signatures
from pyserver.index.identifiers import STOP, fts_query, identifier_terms, identifiers, query_terms
from pyserver.index.signatures import LiveSignatures
from pyserver.index.store import IndexStore, StoredChunk

CONTEXT_LINES = 15  # lines before the cursor whose names and terms make the completion query
# The completion query keeps its rarest terms, as many as stay within this many postings in all: common terms
# (`data`, `value`) cost the most to score and say the least.
MAX_POSTINGS = 2000
MAX_QUERY_TERMS = 6
RRF_K = 60  # reciprocal-rank fusion constant (the usual choice)
HAMMING_CANDIDATES = 100  # binary top-N rescored with int8 (bench index: within 1% of fp32 recall at 100)


@dataclass(frozen=True)
class Hit:
    chunk: StoredChunk
    score: float
    why: str  # "definition" | "bm25" | "dense" | "fused"


def completion_context(
    store: IndexStore, prefix: str, budget_chars: int, exclude_path: str | None = None, max_chunks: int = 6
) -> list[Hit]:
    """Chunks of other files that the code before the cursor refers to, best first, within budget_chars."""
    tail = "\n".join(prefix.split("\n")[-CONTEXT_LINES:])
    names: list[str] = []
    for name in reversed(identifiers(tail)):  # nearest the cursor first
        if name not in names and len(name) > 1 and name.lower() not in STOP:
            names.append(name)
    ranked: list[tuple[int, float, str]] = []
    order = {n: i for i, n in enumerate(names)}
    defs = sorted(store.definitions(names[:40]), key=lambda d: order.get(d[0], 1 << 30))
    ranked.extend((cid, 1.0, "definition") for _, cid in defs)
    ranked.extend((cid, s, "bm25") for cid, s in store.bm25(fts_query(selective_terms(store, tail)), 20))
    return _pack(store, ranked, budget_chars, exclude_path, max_chunks)


def selective_terms(store: IndexStore, text: str) -> list[str]:
    """The text's terms nearest its end, the rarest first, within MAX_POSTINGS postings."""
    nearest = list(dict.fromkeys(reversed(identifier_terms(text))))[: 2 * MAX_QUERY_TERMS]
    df = store.document_frequencies(nearest)
    picked: list[str] = []
    postings = 0
    for t in sorted(df, key=lambda t: df[t]):
        if picked and (postings + df[t] > MAX_POSTINGS or len(picked) >= MAX_QUERY_TERMS):
            break
        picked.append(t)
        postings += df[t]
    return picked


def _pack(
    store: IndexStore,
    ranked: Sequence[tuple[int, float, str]],
    budget_chars: int,
    exclude_path: str | None,
    max_chunks: int,
) -> list[Hit]:
    seen: set[int] = set()
    unique = []
    for cid, s, why in ranked:
        if cid not in seen:
            seen.add(cid)
            unique.append((cid, s, why))
    chunks = {c.id: c for c in store.chunks([cid for cid, _, _ in unique[: 4 * max_chunks]])}
    out: list[Hit] = []
    used = 0
    for cid, s, why in unique:
        c = chunks.get(cid)
        if c is None or c.path == exclude_path:
            continue
        if used + len(c.text) > budget_chars:
            continue
        out.append(Hit(c, s, why))
        used += len(c.text)
        if len(out) >= max_chunks:
            break
    return out


def text_search(
    store: IndexStore, query: str, k: int = 10, embedder: MiniLM | None = None, signatures: LiveSignatures | None = None
) -> list[Hit]:
    """Best chunks for a natural-language or code query: dense (when embeddings exist) fused with BM25."""
    bm = store.bm25(fts_query(query_terms(query)), 50)
    dense: list[tuple[int, float]] = []
    if embedder is not None:
        if signatures is None:
            signatures = LiveSignatures()
        signatures.sync(store)
        if signatures.count:
            qv = embedder.embed([query])[0]
            cand = signatures.nearest(binary_signatures(qv[None])[0], HAMMING_CANDIDATES)
            found, q8, scales = store.int8_vectors(cand.tolist())
            scores = (q8.astype(np.float32) @ qv) * scales
            order = np.argsort(-scores, kind="stable")
            dense = [(int(found[i]), float(scores[i])) for i in order[:50]]
    if not dense:
        return _pack(store, [(c, s, "bm25") for c, s in bm], 1 << 30, None, k)
    fused: dict[int, float] = {}
    for ranking in (dense, bm):
        for rank, (cid, _) in enumerate(ranking):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    ranked = sorted(fused.items(), key=lambda kv: -kv[1])
    return _pack(store, [(c, s, "fused") for c, s in ranked], 1 << 30, None, k)
