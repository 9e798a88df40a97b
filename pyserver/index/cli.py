"""`python -m pyserver index PATH` and `python -m pyserver search PATH "query"`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pyserver.index.store import IndexUnavailable
from pyserver.index.workspace import Progress, WorkspaceIndex, default_index_path


def _bar(done: int, total: int, label: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    fill = int(width * done / max(1, total))
    sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} {label[-50:]:<50}")
    sys.stderr.flush()


def _open(args: argparse.Namespace) -> WorkspaceIndex | None:
    root = Path(args.path)
    if not root.is_dir():
        print(f"error: {root} is not a folder", file=sys.stderr)
        return None
    db = Path(args.db) if args.db else default_index_path(root)
    try:
        return WorkspaceIndex(root, db, include=tuple(args.include or ()), exclude=tuple(args.exclude or ()))
    except IndexUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_index(args: argparse.Namespace) -> int:
    index = _open(args)
    if index is None:
        return 2
    rep = index.scan(Progress(report=lambda d, t, p: _bar(d, t, p)))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    embedded, t0 = 0, time.perf_counter()
    if not args.no_embed and index.embedder is not None:
        pending = index.store.counts()["chunks"] - index.store.counts()["vectors"]
        while True:
            n = index.embed_pending(limit=64)
            embedded += n
            _bar(embedded, pending, "embeddings")
            if n == 0:
                break
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    out = {
        "root": str(index.root),
        "database": str(index.db_path),
        "scan_seconds": round(rep.seconds, 2),
        "files_indexed": rep.files_indexed,
        "files_removed": rep.files_removed,
        "files_skipped": rep.files_skipped,
        "embedded": embedded,
        "embed_seconds": round(time.perf_counter() - t0, 2),
        **index.store.counts(),
        "database_bytes": index.store.size_bytes(),
        "embeddings": "present" if index.embedder is not None else "absent (lexical only)",
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    index.close()
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    index = _open(args)
    if index is None:
        return 2
    if index.store.counts()["files"] == 0:
        index.scan()
    t0 = time.perf_counter()
    hits = index.search(args.query, k=args.k, dense=not args.lexical)
    ms = (time.perf_counter() - t0) * 1e3
    json.dump(
        {
            "query": args.query,
            "ms": round(ms, 2),
            "hits": [
                {
                    "path": h.chunk.path,
                    "lines": [h.chunk.start_line, h.chunk.end_line],
                    "kind": h.chunk.kind,
                    "symbol": h.chunk.symbol,
                    "score": round(h.score, 4),
                    "how": h.why,
                }
                for h in hits
            ],
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")
    index.close()
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", help="workspace folder")
        p.add_argument("--db", default=None, help="index file (default: one per folder under ~/.cache/ryzanstein)")
        p.add_argument("--include", action="append", help="glob to index (repeatable; default everything)")
        p.add_argument("--exclude", action="append", help="glob never to index (repeatable)")

    idx = sub.add_parser("index", help="build or update a folder's index (lexical, then embeddings)")
    common(idx)
    idx.add_argument("--no-embed", action="store_true", help="lexical index only")
    idx.set_defaults(func=cmd_index)

    srch = sub.add_parser("search", help="search a folder's index (builds the lexical part if missing)")
    common(srch)
    srch.add_argument("query")
    srch.add_argument("--k", type=int, default=10)
    srch.add_argument("--lexical", action="store_true", help="BM25 only, no embeddings")
    srch.set_defaults(func=cmd_search)
