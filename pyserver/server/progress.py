"""Work-done progress in the client, set up one way for every long job: the first model load, indexing, refactors.

`begin_progress` creates a token and begins it; the `WorkDone` it returns reports and ends from any thread, and
its `cancelled` event is set when the user cancels from the notification. A client without work-done progress (or
one that refuses the token) gets a `WorkDone` that shows nothing, so callers never branch on it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from lsprotocol import types as t

from pyserver.index.workspace import Progress
from pyserver.server.sidecar import RyzansteinServer


class WorkDone:
    """One progress notification in the client (or none: `token` None)."""

    def __init__(self, ls: RyzansteinServer, loop: asyncio.AbstractEventLoop, token: str | None) -> None:
        self._ls, self._loop, self.token = ls, loop, token
        self.cancelled = threading.Event()  # the user cancelled (callers set it too, to stop their job)
        self._ended = threading.Event()

    def report(self, message: str, percentage: int) -> None:
        if self.token is not None and not self._ended.is_set():
            self._call(
                self._ls.work_done_progress.report, t.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def end(self, message: str) -> None:
        """Ends the notification; later reports and ends do nothing."""
        if self.token is not None and not self._ended.is_set():
            self._ended.set()
            self._call(self._end, t.WorkDoneProgressEnd(message=message))

    def _end(self, token: str, value: t.WorkDoneProgressEnd) -> None:
        """Sends the end and forgets the token: pygls keeps a future per token and never drops it (a leak per
        command otherwise)."""
        progress = self._ls.work_done_progress
        progress.end(token, value)
        progress.tokens.pop(token, None)

    def for_index(self) -> Progress:
        """The index's view of it: done / total reports (ended, "done", once done reaches total)."""

        def report(done: int, total: int, message: str) -> None:
            if done >= total:
                self.end("done")
            else:
                self.report(message, int(100 * done / max(1, total)))

        return Progress(report=report, cancelled=self.cancelled.is_set)

    def _call(self, send: Any, value: Any) -> None:
        """Sends now on the event loop's thread; from a worker thread, hands the send to the loop."""
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            send(self.token, value)
        else:
            self._loop.call_soon_threadsafe(send, self.token, value)


async def begin_progress(
    ls: RyzansteinServer,
    title: str,
    *,
    cancellable: bool = True,
    percentage: int | None = None,
    token_prefix: str = "ryzanstein",
) -> WorkDone:
    """Creates and begins a progress notification titled `title` (on the event loop)."""
    loop = asyncio.get_running_loop()
    caps = ls.client_capabilities.window
    if caps is None or not caps.work_done_progress:
        return WorkDone(ls, loop, None)
    token = f"{token_prefix}-{uuid.uuid4()}"
    try:
        await ls.work_done_progress.create_async(token)
        # (`cancellable` is left out when false, LSP's default)
        ls.work_done_progress.begin(
            token, t.WorkDoneProgressBegin(title=title, cancellable=cancellable or None, percentage=percentage)
        )
    except Exception:  # a client that refuses progress still gets the work done
        return WorkDone(ls, loop, None)
    work = WorkDone(ls, loop, token)
    fut = ls.work_done_progress.tokens.get(token)
    if fut is not None:
        fut.add_done_callback(lambda f: work.cancelled.set() if f.cancelled() else None)
    return work
