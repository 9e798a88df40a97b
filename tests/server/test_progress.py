"""Ended progress notifications leave nothing behind (pygls keeps a future per token and never drops it)."""

from __future__ import annotations

import asyncio

from lsprotocol import types as t

from pyserver.server.progress import WorkDone
from pyserver.server.sidecar import RyzansteinServer


def test_an_ended_progress_forgets_its_token() -> None:
    ls = RyzansteinServer()
    sent: list[tuple[str, object]] = []
    ls.protocol.notify = lambda method, params=None: sent.append((method, params))  # type: ignore[method-assign]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for i in range(100):
            token = f"ryzanstein-{i}"
            ls.work_done_progress.begin(token, t.WorkDoneProgressBegin(title="x"))
            WorkDone(ls, loop, token).end("done")

    asyncio.run(run())
    assert ls.work_done_progress.tokens == {}
    assert len(sent) == 200 and sent[-1][0] == "$/progress"  # every begin and end still went out
