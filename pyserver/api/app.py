"""An OpenAI-compatible HTTP API over the engine (Starlette): `/v1/models`, `/v1/completions` (with `suffix` for
fill-in-the-middle on models with FIM tokens) and `/v1/chat/completions`, plain or streamed as server-sent events.

Requests run one at a time in arrival order (runner.py); a client that disconnects stops its generation within a
token. Bad requests get a 4xx JSON error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
With an API key configured, every request needs `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pyserver.api.chat import ChatTemplateError, render
from pyserver.api.runner import Job, Runner
from pyserver.completion.window import layout
from pyserver.engine.host import ModelHost
from pyserver.engine.sampling import SamplerConfig

MAX_TOKENS_DEFAULT = 256


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param, self.status = param, status


def error(message: str, status: int, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise BadRequest(f"'{key}' must be a number in [{lo}, {hi}]", key)
    return float(v)


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise BadRequest("'stop' must be a string or a list of at most 4 strings", "stop")


class Api:
    def __init__(self, host: ModelHost, api_key: str | None = None, model_id: str | None = None) -> None:
        self.host = host
        self.runner = Runner(host)
        self.api_key = api_key
        self.model_id = model_id or (host.model_path.stem if host.model_path else "ryzanstein")
        self.created = int(time.time())

    # ---- the requests' parts ---------------------------------------------------------------------------------
    def _check(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        if model is not None and model != self.model_id:
            raise BadRequest(f"model '{model}' is not served here (this server has '{self.model_id}')", "model", 404)

    def _job(self, body: dict[str, Any], prompt: list[int]) -> Job:
        if not prompt:
            raise BadRequest("the prompt is empty", "prompt")
        max_tokens = body.get("max_tokens", MAX_TOKENS_DEFAULT)
        if max_tokens is None:
            max_tokens = MAX_TOKENS_DEFAULT
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest("'max_tokens' must be a positive integer", "max_tokens")
        seed = body.get("seed")
        try:
            sampler = SamplerConfig(
                temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
                top_p=_number(body, "top_p", 1.0, 1e-6, 1.0),
                seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        return Job(prompt, max_tokens, sampler, _stops(body))

    def completion_prompt(self, body: dict[str, Any]) -> list[int]:
        tok = self._tokenizer()
        prompt, suffix = body.get("prompt", ""), body.get("suffix")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("'prompt' must be a string (one prompt per request)", "prompt")
        if suffix is None:
            return ([tok.special.bos] if tok.special.add_bos and tok.special.bos is not None else []) + tok.encode(
                prompt
            )
        if not isinstance(suffix, str):
            raise BadRequest("'suffix' must be a string", "suffix")
        if not tok.special.has_fim:
            raise BadRequest("this model has no fill-in-the-middle tokens: 'suffix' is not supported", "suffix")
        assert self.host.model is not None
        return layout(tok, tok.encode(prompt), tok.encode(suffix), self.host.model.traits.fim_order)

    def chat_prompt(self, body: dict[str, Any]) -> list[int]:
        tok = self._tokenizer()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty list", "messages")
        clean = []
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise BadRequest("each message needs a 'role' and a 'content'", "messages")
            content = m.get("content")
            if isinstance(content, list):  # content parts: the text ones
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            if not isinstance(content, str):
                raise BadRequest("a message's 'content' must be text", "messages")
            clean.append({"role": m["role"], "content": content})
        assert self.host.model is not None
        sp = tok.special
        bos = tok.decode([sp.bos]) if sp.bos is not None else ""
        eos = tok.decode([sp.eos]) if sp.eos is not None else ""
        try:
            text = render(self.host.model.traits.chat_template, clean, bos, eos)
        except ChatTemplateError as exc:
            raise BadRequest(str(exc), "messages") from exc
        if bos and text.startswith(bos):  # the template wrote BOS as text: the token itself, once
            return [int(sp.bos)] + tok.encode(text[len(bos) :])
        return tok.encode(text)

    def _tokenizer(self) -> Any:
        m = self.host.model
        if m is None or m.tokenizer is None:
            raise BadRequest(f"the model is not ready ({self.host.state})", status=503)
        return m.tokenizer

    # ---- endpoints ---------------------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": self.model_id, "object": "model", "created": self.created, "owned_by": "ryzanstein"}],
            }
        )

    async def completions(self, request: Request) -> Response:
        body = await _json(request)
        self._check(body)
        job = self._job(body, self.completion_prompt(body))
        ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        logprobs = body.get("logprobs") not in (None, 0, False)

        def choice(text: str, finish: str | None) -> dict[str, Any]:
            c: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            if logprobs and finish is not None and job.result is not None:
                r, tok = job.result, self._tokenizer()
                c["logprobs"] = {"tokens": [tok.decode([t]) for t in r.tokens], "token_logprobs": r.token_logprobs}
            return c

        def envelope(choices: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "text_completion",
                "created": created,
                "model": self.model_id,
                "choices": choices,
            }

        if body.get("stream"):
            return self._sse(
                request, job, lambda d: envelope([choice(d, None)]), lambda: envelope([choice("", _finish(job))])
            )
        text = await self._until_disconnect(request, self.runner.run(job))
        out = envelope([choice(text, _finish(job))])
        out["usage"] = _usage(job)
        return JSONResponse(out)

    async def chat_completions(self, request: Request) -> Response:
        body = await _json(request)
        self._check(body)
        job = self._job(body, self.chat_prompt(body))
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def envelope(kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
            return {"id": ident, "object": kind, "created": created, "model": self.model_id, "choices": choices}

        if body.get("stream"):
            first = [True]

            def delta(d: str) -> dict[str, Any]:
                piece: dict[str, Any] = {"content": d}
                if first[0]:
                    piece["role"], first[0] = "assistant", False
                return envelope("chat.completion.chunk", [{"index": 0, "delta": piece, "finish_reason": None}])

            return self._sse(
                request,
                job,
                delta,
                lambda: envelope("chat.completion.chunk", [{"index": 0, "delta": {}, "finish_reason": _finish(job)}]),
            )
        text = await self._until_disconnect(request, self.runner.run(job))
        message = {"role": "assistant", "content": text}
        out = envelope("chat.completion", [{"index": 0, "message": message, "finish_reason": _finish(job)}])
        out["usage"] = _usage(job)
        return JSONResponse(out)

    def _sse(
        self, request: Request, job: Job, chunk: Callable[[str], dict[str, Any]], last: Callable[[], dict[str, Any]]
    ) -> Response:
        async def events() -> AsyncIterator[str]:
            async for piece in self.runner.stream(job):  # closing this generator (a disconnect) cancels the job
                yield json.dumps(chunk(piece))
            yield json.dumps(last())
            yield "[DONE]"

        return EventSourceResponse(events(), ping=15)

    async def _until_disconnect(self, request: Request, work: Awaitable[str]) -> str:
        """Awaits a non-streamed generation; a client that disconnects meanwhile cancels it."""
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.wait({task}, timeout=0.1)
            if not task.done() and await request.is_disconnected():
                task.cancel()  # the runner's stream is closed: the job's cancel flag is set
                break
        try:
            return await task
        except asyncio.CancelledError:
            raise BadRequest("the client went away", status=499) from None

    # ---- the app -----------------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                if self.api_key:
                    given = request.headers.get("authorization", "")
                    if not secrets.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                        return error(
                            "a valid API key is required (Authorization: Bearer <key>)",
                            401,
                            kind="authentication_error",
                        )
                try:
                    return await handler(request)
                except BadRequest as exc:
                    return error(str(exc), exc.status, exc.param)

            return endpoint

        return Starlette(
            routes=[
                Route("/v1/models", guarded(self.models), methods=["GET"]),
                Route("/v1/completions", guarded(self.completions), methods=["POST"]),
                Route("/v1/chat/completions", guarded(self.chat_completions), methods=["POST"]),
            ]
        )


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _finish(job: Job) -> str:
    r = job.result
    if r is None or r.stop_reason in ("max_tokens", "context_full"):
        return "length"
    return "stop"


def _usage(job: Job) -> dict[str, int]:
    r = job.result
    gen = len(r.tokens) if r is not None else 0
    return {"prompt_tokens": len(job.prompt), "completion_tokens": gen, "total_tokens": len(job.prompt) + gen}
