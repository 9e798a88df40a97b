"""The `remote` tier: any OpenAI-compatible server (llama.cpp's, vLLM, Ollama, LM Studio, Tabby) that the user
configured by URL (and key). The router treats it as the largest tier: it writes refactors and explanations and,
when the user says it handles `suffix` (fill-in-the-middle, `fim`), answers the completions the local model is
unsure of.
Nothing is ever sent anywhere unless a URL is configured.

When the server is down, each call fails fast (a short connect timeout) and the tier stays marked down for a
back-off period, so the local tiers answer meanwhile without waiting on it again. Streaming is read as server-sent
events; a generation is cancelled by closing the connection (the server sees the client go)."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pyserver.engine.sampling import SamplerConfig
from pyserver.index.secrets import redact

log = logging.getLogger("ryzanstein")

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 60.0
DOWN_BACKOFF_S = 30.0


class RemoteUnavailable(RuntimeError):
    """The remote server could not be reached or answered with an error."""


@dataclass(frozen=True)
class RemoteConfig:
    url: str  # the API's base, e.g. http://127.0.0.1:8080/v1 (a URL without /v1 gets it added)
    api_key: str = ""
    model: str = ""  # the model name to ask for; empty: the first one the server lists
    # The server fills the middle (`suffix`, with the model's FIM tokens): refactors then send the code after the gap,
    # and uncertain completions go to it. Off by default: some servers accept `suffix` and ignore or mangle it
    # (llama-cpp-python 0.3.36 uses token 0 for the FIM markers).
    fim: bool = False

    @property
    def base(self) -> str:
        u = self.url.rstrip("/")
        return u if u.endswith("/v1") else u + "/v1"


class RemoteEngine:
    def __init__(self, config: RemoteConfig, clock: Callable[[], float] = time.monotonic) -> None:
        parts = urlsplit(config.base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"remote URL must be http(s)://host[:port][/v1], not {config.url!r}")
        self.config = config
        self._parts = parts
        self._clock = clock
        self._down_until = 0.0
        self._model: str | None = config.model or None
        self._lock = threading.Lock()
        self.name = f"remote {parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self.last_error = ""

    # ---- availability -------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return self._clock() < self._down_until

    def _mark_down(self, why: str) -> None:
        self._down_until = self._clock() + DOWN_BACKOFF_S
        self.last_error = why
        log.warning("%s is unavailable (%s): the local tiers answer for %.0f s", self.name, why, DOWN_BACKOFF_S)

    def available(self) -> bool:
        """Whether the server answers (its model list), checked at most once per back-off period when down."""
        if self.down:
            return False
        try:
            self.model_name()
            return True
        except RemoteUnavailable:
            return False

    def model_name(self) -> str:
        if self._model is None:
            listed = self._request("GET", "/models", None).get("data") or []
            if not listed or not isinstance(listed[0], dict) or not isinstance(listed[0].get("id"), str):
                raise RemoteUnavailable("the server lists no model")
            self._model = listed[0]["id"]
        return self._model

    def status(self) -> dict[str, Any]:
        return {"url": self.config.base, "model": self._model, "down": self.down, "error": self.last_error or None}

    # ---- HTTP -----------------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        p = self._parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        return cls(p.hostname or "", p.port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.config.api_key:
            h["Authorization"] = f"Bearer {self.config.api_key}"
        return h

    def _open(
        self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float = READ_TIMEOUT_S
    ) -> tuple[Any, Any]:
        if self.down:
            raise RemoteUnavailable(f"{self.name} is down ({self.last_error})")
        conn = self._connection(min(CONNECT_TIMEOUT_S, timeout_s))
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, self._parts.path.rstrip("/") + path, body=data, headers=self._headers())
            resp = conn.getresponse()
        except TimeoutError as exc:  # slow, not down: only this call gives up
            conn.close()
            raise RemoteUnavailable(f"no answer within {timeout_s:.1f} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._mark_down(f"{type(exc).__name__}: {exc}")
            raise RemoteUnavailable(self.last_error) from exc
        if resp.status >= 400:
            detail = resp.read(2000).decode("utf-8", "replace")
            conn.close()
            if resp.status >= 500 or resp.status in (401, 403, 404):
                self._mark_down(f"HTTP {resp.status}: {detail[:200]}")
            raise RemoteUnavailable(f"HTTP {resp.status}: {detail[:200]}")
        return conn, resp

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        conn, resp = self._open(method, path, body)
        try:
            out = json.loads(resp.read())
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self._mark_down(f"unreadable answer: {exc}")
            raise RemoteUnavailable(self.last_error) from exc
        finally:
            conn.close()
        if not isinstance(out, dict):
            raise RemoteUnavailable("the answer is not a JSON object")
        return out

    def _events(
        self, path: str, body: dict[str, Any], should_stop: Callable[[], bool], timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        """The stream's JSON events; closing the connection when should_stop() cancels the generation."""
        conn, resp = self._open("POST", path, {**body, "stream": True}, timeout_s)
        try:
            while not should_stop():
                try:
                    line = resp.readline()
                except TimeoutError as exc:
                    raise RemoteUnavailable(f"no answer within {timeout_s:.1f} s") from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._mark_down(f"stream broken: {exc}")
                    raise RemoteUnavailable(self.last_error) from exc
                if not line:
                    return
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event
        finally:
            conn.close()

    # ---- generation ----------------------------------------------------------------------

    def complete(
        self,
        prompt: str,
        suffix: str | None,
        max_tokens: int,
        stop: Sequence[str],
        should_stop: Callable[[], bool],
        sampler: SamplerConfig | None = None,
        on_text: Callable[[str], None] | None = None,
        timeout_s: float = READ_TIMEOUT_S,
    ) -> str | None:
        """The server's continuation of prompt (filling up to suffix when given); None when stopped. `timeout_s`:
        the longest wait for the answer's next piece."""
        s = sampler or SamplerConfig()
        body: dict[str, Any] = {
            "model": self.model_name(),
            "prompt": redact(prompt),  # (code leaves the machine here: secrets never do)
            "max_tokens": max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
        }
        if stop:
            body["stop"] = list(stop)[:4]  # (the API allows at most four)
        if suffix is not None:
            body["suffix"] = redact(suffix)
        if s.seed is not None:
            body["seed"] = s.seed
        text = ""
        for event in self._events("/completions", body, should_stop, timeout_s):
            choices = event.get("choices") or []
            if choices and isinstance(choices[0], dict):
                text += str(choices[0].get("text") or "")
                if on_text is not None:
                    on_text(text)
        return None if should_stop() else text

    # The Writer protocol (pyserver/refactor/writer.py): a refactor's text from the remote server.
    def write(
        self,
        prefix: str,
        suffix: str | None,
        max_tokens: int,
        stop: Sequence[str],
        should_stop: Callable[[], bool],
        sampler: SamplerConfig | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str | None:
        return self.complete(
            prefix, suffix if self.config.fim else None, max_tokens, stop, should_stop, sampler, on_text
        )
