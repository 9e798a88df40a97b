"""The workspace index's commands: reindex (every file checked again, with progress) and search (the best chunks
for a query, as locations)."""

from __future__ import annotations

import asyncio
from typing import Any

from pyserver.server.command_args import SearchArgs, parse
from pyserver.server.progress import begin_progress
from pyserver.server.sidecar import RyzansteinServer


async def cmd_reindex(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    del args
    if not ls.index.indexes:
        return {"indexed": False, "reason": "no workspace folder is indexed (or indexing is off)"}
    progress = await begin_progress(ls, "Ryzanstein: re-indexing", percentage=0)
    reports = await asyncio.get_running_loop().run_in_executor(None, ls.index.reindex, progress.for_index())
    progress.end("done")
    return {
        "indexed": True,
        "files_indexed": sum(r.files_indexed for r in reports),
        "files_removed": sum(r.files_removed for r in reports),
        **ls.index.status(),
    }


async def cmd_search(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(SearchArgs, args)
    hits: list[dict[str, Any]] = []
    for index in ls.index.indexes:
        found = await asyncio.get_running_loop().run_in_executor(ls.refactor_pool, index.search, a.query, a.count)
        hits += [
            {
                "uri": (index.root / h.chunk.path).as_uri(),
                "range": {
                    "start": {"line": h.chunk.start_line - 1, "character": 0},
                    "end": {"line": h.chunk.end_line, "character": 0},
                },
                "symbol": h.chunk.symbol,
                "score": h.score,
            }
            for h in found
        ]
    return {"hits": sorted(hits, key=lambda h: -h["score"])[: a.count]}
