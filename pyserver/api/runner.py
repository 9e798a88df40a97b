"""Runs the API's generations on the engine: one at a time on a worker thread, requests served in arrival order
(an asyncio lock is first come, first served), text streamed back to the event loop as it is decoded, and stopped
within a token when the client goes away (`cancel`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyserver.engine.generate import Generation, GenerationResult
from pyserver.engine.host import ModelHost
from pyserver.engine.sampling import Sampler, SamplerConfig


@dataclass
class Job:
    prompt: list[int]
    max_tokens: int
    sampler: SamplerConfig
    stop: Sequence[str] = ()
    top_logprobs: int = 0  # alternatives to record per token (0: none)
    cancel: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None


class Runner:
    def __init__(self, host: ModelHost) -> None:
        self.host = host
        self._turn = asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-generate")
        self.served = 0
        self.cancelled = 0  # generations stopped because the client went away

    async def stream(self, job: Job) -> AsyncIterator[str]:
        """Text deltas of the job's generation (its result is on the job when the iterator ends)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        async with self._turn:
            done = loop.run_in_executor(self._pool, self._generate, job, loop, queue)
            try:
                while (piece := await queue.get()) is not None:
                    yield piece
            finally:
                job.cancel.set()  # a client that stopped reading: the worker stops within a token
                await done
        self.served += 1

    async def run(self, job: Job) -> str:
        return "".join([piece async for piece in self.stream(job)])

    def _generate(self, job: Job, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
        try:
            session = self.host.refactor_session()
            budget = session.n_ctx - len(job.prompt)
            if budget <= 0:
                raise ValueError(f"the prompt has {len(job.prompt)} tokens; the context holds {session.n_ctx}")
            g = Generation(
                session,
                job.prompt,
                sampler=Sampler(job.sampler),
                max_tokens=min(job.max_tokens, budget),
                stop_strings=job.stop,
                should_stop=job.cancel.is_set,
                top_logprobs=job.top_logprobs,
            )
            t0 = time.perf_counter()
            for piece in g:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            job.result = g.result
            if g.result.stop_reason == "cancelled":
                self.cancelled += 1
            self.host.last_latency_ms = (time.perf_counter() - t0) * 1e3
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)
