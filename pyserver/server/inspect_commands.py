"""The introspection commands: inspectModel (the served model's weights, or the model file named by `path`) and
inspectIndex (the workspace folders' indexes), answered with the report's self-contained HTML page (`html`, with a
`title`; inspectIndex gives one page per folder in `pages` too). The reading runs on a worker thread, one thread of
popcount scans at a time so completions keep a core, with progress the user can cancel; a model that cannot be
read, or no index, is an answer with `reason` instead of `html`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyserver.engine.errors import ModelLoadError
from pyserver.index.store import IndexUnavailable
from pyserver.inspect.index_report import inspect_index
from pyserver.inspect.model_report import inspect_model, summary
from pyserver.inspect.weights import Options
from pyserver.server.command_args import parse
from pyserver.server.progress import WorkDone, begin_progress
from pyserver.server.sidecar import RyzansteinServer


@dataclass(frozen=True)
class InspectModelArgs:
    """ryzanstein.sidecar.inspectModel: a model file or checkpoint folder (default: the model being served)."""

    path: str | None = None


class _Cancelled(Exception):
    pass


def _reporter(progress: WorkDone) -> Any:
    def report(done: int, total: int, message: str) -> None:
        if progress.cancelled.is_set():
            raise _Cancelled
        progress.report(message, int(100 * done / max(1, total)))

    return report


async def cmd_inspect_model(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    a = parse(InspectModelArgs, args) if args else InspectModelArgs()
    path = Path(a.path) if a.path else ls.host.model_path
    if path is None:
        return {"html": None, "reason": "no model is loaded yet"}
    progress = await begin_progress(ls, f"Ryzanstein: inspecting {path.name}", percentage=0)
    report = _reporter(progress)
    try:
        result, html = await asyncio.get_running_loop().run_in_executor(
            None, lambda: inspect_model(path, Options(threads=1), progress=report)
        )
    except _Cancelled:
        progress.end("cancelled")
        return {"html": None, "cancelled": True, "reason": "cancelled"}
    except ModelLoadError as exc:
        progress.end("failed")
        return {"html": None, "reason": str(exc)}
    progress.end("done")
    return {"html": html, "title": f"Inspect: {path.name}", "summary": summary(result)}


async def cmd_inspect_index(ls: RyzansteinServer, *args: Any) -> dict[str, Any]:
    del args
    indexes = list(ls.index.indexes)
    if not indexes:
        return {"html": None, "reason": "no workspace folder is indexed (or indexing is off)"}
    progress = await begin_progress(ls, "Ryzanstein: inspecting the index", percentage=0)
    pages = []
    try:
        for i, index in enumerate(indexes):
            progress.report(index.root.name, int(100 * i / len(indexes)))
            _report, html = await asyncio.get_running_loop().run_in_executor(
                None, inspect_index, index.db_path, str(index.root)
            )
            pages.append({"title": f"Inspect Index: {index.root.name}", "html": html})
    except IndexUnavailable as exc:
        progress.end("failed")
        return {"html": None, "reason": str(exc)}
    progress.end("done")
    return {"html": pages[0]["html"], "title": pages[0]["title"], "pages": pages}
