"""An OpenAI-compatible HTTP API over the engine (Starlette): `/v1/models`, `/v1/completions` (with `suffix` for
fill-in-the-middle on models with FIM tokens, cut at the gap: fim.py) and `/v1/chat/completions`, plain or
streamed as server-sent events, with `logprobs` (and their top alternatives) when not streamed.

Requests run one at a time in arrival order (runner.py); a client that disconnects stops its generation within a
token. Bad requests get a 4xx JSON error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}: a
prompt longer than the model's context is a 400 with code `context_length_exceeded` (as OpenAI answers it), and a
parameter the engine cannot honour (`n` > 1, a `tool_choice` or `function_call` that requires a call, `echo`,
`best_of` > 1) is refused by name rather than ignored; tools offered with the choice left to the model ("auto")
get a text answer, as OpenAI's "auto" allows. With an API key configured, every request needs
`Authorization: Bearer <key>`.
"""

from __future__ import annotations

import asyncio
import json
import logging
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
from pyserver.api.fim import middle_only
from pyserver.api.runner import Job, Runner
from pyserver.completion.window import layout
from pyserver.engine.host import ModelHost
from pyserver.engine.sampling import SamplerConfig

log = logging.getLogger("ryzanstein")

MAX_TOKENS_DEFAULT = 256


MAX_COMPLETION_LOGPROBS = 5  # OpenAI's own limits
MAX_CHAT_TOP_LOGPROBS = 20


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


def error(
    message: str, status: int, param: str | None = None, kind: str = "invalid_request_error", code: str | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def _unsupported(body: dict[str, Any]) -> None:
    """Parameters the engine cannot honour are refused by name, not ignored."""
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("only n=1 is supported: this engine writes one choice per request", "n")
    best_of = body.get("best_of")
    if best_of is not None and best_of != 1:
        raise BadRequest("best_of is not supported (only 1)", "best_of")
    # Tools offered with the choice left to the model ("auto", as Continue sends them with every chat) are answered
    # in text, which OpenAI's "auto" allows (and logged); a call it must make cannot be.
    for key, choice in (("tools", "tool_choice"), ("functions", "function_call")):
        if body.get(choice) not in (None, "none", "auto"):
            raise BadRequest(f"'{choice}' asks for a tool call: this model does not call tools", choice)
        if body.get(key):
            log.info("a request offered %s: answered in text (this model does not call tools)", key)
    if body.get("echo"):
        raise BadRequest("'echo' is not supported", "echo")


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

    def _job(self, body: dict[str, Any], prompt: list[int], param: str = "prompt", top_logprobs: int = 0) -> Job:
        if not prompt:
            raise BadRequest("the prompt is empty", param)
        n_ctx = self._context_length()
        if len(prompt) >= n_ctx:
            raise BadRequest(
                f"This model's maximum context length is {n_ctx} tokens; the {param} has {len(prompt)}. Shorten it "
                "(or serve a larger tier: python -m pyserver models).",
                param,
                code="context_length_exceeded",
            )
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
        return Job(prompt, max_tokens, sampler, _stops(body), top_logprobs)

    def _context_length(self) -> int:
        try:
            return int(self.host.refactor_session().n_ctx)
        except AssertionError:  # (no session yet: the model's own figure)
            assert self.host.model is not None
            return int(self.host.model.config.context_length)

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
        _unsupported(body)
        want = body.get("logprobs")
        if want is not None and (isinstance(want, bool) or not isinstance(want, int) or not 0 <= want <= 5):
            raise BadRequest(f"'logprobs' must be an integer from 0 to {MAX_COMPLETION_LOGPROBS}", "logprobs")
        if want is not None and body.get("stream"):
            raise BadRequest("'logprobs' is given with stream: false only", "logprobs")
        job = self._job(body, self.completion_prompt(body), top_logprobs=want or 0)
        ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        fim = body.get("suffix") is not None
        prompt_text = str(body.get("prompt") or "") if isinstance(body.get("prompt"), str) else ""

        def choice(text: str, finish: str | None) -> dict[str, Any]:
            c: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            if want is not None and finish is not None and job.result is not None:
                c["logprobs"] = self._completion_logprobs(job, want)
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
            cut = (lambda text: middle_only(text, prompt_text, str(body["suffix"]))) if fim else None
            return self._sse(
                request,
                job,
                lambda d: envelope([choice(d, None)]),
                lambda: envelope([choice("", _finish(job))]),
                cut,
            )
        text = await self._until_disconnect(request, self.runner.run(job))
        if fim:
            text = middle_only(text, prompt_text, str(body["suffix"]))
        out = envelope([choice(text, _finish(job))])
        out["usage"] = _usage(job)
        return JSONResponse(out)

    async def chat_completions(self, request: Request) -> Response:
        body = await _json(request)
        self._check(body)
        _unsupported(body)
        want = bool(body.get("logprobs"))
        top = body.get("top_logprobs") or 0
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_CHAT_TOP_LOGPROBS:
            raise BadRequest(f"'top_logprobs' must be an integer from 0 to {MAX_CHAT_TOP_LOGPROBS}", "top_logprobs")
        if top and not want:
            raise BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs")
        if want and body.get("stream"):
            raise BadRequest("'logprobs' is given with stream: false only", "logprobs")
        job = self._job(body, self.chat_prompt(body), "messages", top if want else 0)
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
        answer: dict[str, Any] = {"index": 0, "message": message, "finish_reason": _finish(job), "logprobs": None}
        if want:
            answer["logprobs"] = {"content": self._chat_logprobs(job)}
        out = envelope("chat.completion", [answer])
        out["usage"] = _usage(job)
        return JSONResponse(out)

    def _pieces(self, job: Job) -> list[tuple[str, bytes]]:
        """Each generated token's text and bytes."""
        from pyserver.engine.token_bytes import matcher_for

        assert job.result is not None
        pieces = matcher_for(self._tokenizer()).pieces
        return [(pieces[t].decode("utf-8", "replace"), bytes(pieces[t])) for t in job.result.tokens]

    def _completion_logprobs(self, job: Job, k: int) -> dict[str, Any]:
        r = job.result
        assert r is not None
        texts = [t for t, _ in self._pieces(job)]
        offsets, at = [], 0
        for t in texts:
            offsets.append(at)
            at += len(t)
        tops = None
        if k:
            tops = [{self._piece(i): lp for i, lp in alts} for alts in r.top_alternatives]
        return {"tokens": texts, "token_logprobs": r.token_logprobs, "top_logprobs": tops, "text_offset": offsets}

    def _chat_logprobs(self, job: Job) -> list[dict[str, Any]]:
        r = job.result
        assert r is not None
        out = []
        for n, ((text, raw), lp) in enumerate(zip(self._pieces(job), r.token_logprobs)):
            alts = r.top_alternatives[n] if n < len(r.top_alternatives) else []
            top = [{"token": self._piece(i), "logprob": a, "bytes": list(self._raw(i))} for i, a in alts]
            out.append({"token": text, "logprob": lp, "bytes": list(raw), "top_logprobs": top})
        return out

    def _raw(self, token: int) -> bytes:
        from pyserver.engine.token_bytes import matcher_for

        return bytes(matcher_for(self._tokenizer()).pieces[token])

    def _piece(self, token: int) -> str:
        return self._raw(token).decode("utf-8", "replace")

    def _sse(
        self,
        request: Request,
        job: Job,
        chunk: Callable[[str], dict[str, Any]],
        last: Callable[[], dict[str, Any]],
        cut: Callable[[str], str] | None = None,
    ) -> Response:
        """Server-sent events of the job's text; with `cut` (fill-in-the-middle), the text is held back until the
        end and sent cut, in one chunk."""

        async def events() -> AsyncIterator[str]:
            held: list[str] = []
            async for piece in self.runner.stream(job):  # closing this generator (a disconnect) cancels the job
                if cut is None:
                    yield json.dumps(chunk(piece))
                else:
                    held.append(piece)
            if cut is not None and (text := cut("".join(held))):
                yield json.dumps(chunk(text))
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
                    return error(str(exc), exc.status, exc.param, code=exc.code)

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
