"""The wire under pygls: our own stdio reader and the fixes pygls 2.x needs, in one LanguageServerProtocol subclass.

- Framing (`FrameParser`): every message is read whatever its headers say. A Content-Length shorter or longer than
  the body, a header line that is not ASCII, or bytes between messages cost that message only: the reader finds the
  next `Content-Length:` header and goes on (a length a few bytes too long, which ends inside the next header line,
  included). A length over `MAX_BODY_BYTES` is refused before anything is allocated.
- JSON-RPC: a body that is not JSON (or nested too deep) gets a ParseError (-32700), one that is not a JSON-RPC
  message an InvalidRequest (-32600), both with a null id as JSON-RPC 2.0 says; a request whose params cannot be read
  gets InvalidParams (-32602): pygls raises while decoding such a message and never answers it. A message with an
  id is a request, whatever its method: one of LSP's notifications (`textDocument/didOpen`, `$/cancelRequest`, ...)
  sent with an id gets MethodNotFound (-32601) and is not acted on (pygls would drop the id, handle it as the
  notification, and leave the client waiting for an answer).
- The LSP life cycle: requests before `initialize` get ServerNotInitialized (-32002) and notifications are dropped;
  a second `initialize` and requests after `shutdown` get InvalidRequest; only the first `initialized` notification
  is handled (each one loads the model and starts an index); `exit` ends the process with 0 after `shutdown` and 1
  without (`exit_code`), and so does the end of stdin.
- Memory: pygls keeps the future of every notification (and of every step of a generator handler) in
  `_request_futures` and never removes it; here finished ones are dropped (and `shutdown` cancels the requests in
  flight over a copy of that dict).
- A change to a document that is not open, or a `$/cancelRequest` whose id is no id, is dropped with a warning
  (pygls raises, and shows the user an error for a notification).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Generator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO
from urllib.parse import unquote

import attrs
from lsprotocol import types as t
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.workspace import Workspace

log = logging.getLogger("ryzanstein")

MAX_BODY_BYTES = 64 * 2**20  # a longer Content-Length is refused, never allocated
MAX_HEADER_LINE = 1024  # LSP's headers are two short lines; a longer "line" is not a header
MAX_HEADERS = 16  # header lines in one message
READ_CHUNK = 64 * 1024  # bytes per read from stdin
QUEUED_CHUNKS = 16  # read ahead of the parser at most this many chunks (1 MiB): back-pressure on the client

_HEADER = re.compile(rb"([A-Za-z0-9-]+):[ \t]*([\x20-\x7e]*?)[ \t]*\r?\n")
_CONTENT_LENGTH = re.compile(rb"content-length:", re.IGNORECASE)
# A whole Content-Length header line. JSON cannot hold one (a raw line break is not allowed inside a string and
# the words are not JSON outside one), so one inside a body means the body ran into the next message.
_HEADER_IN_BODY = re.compile(rb"content-length:[ \t]*[0-9]+[ \t]*\r?\n", re.IGNORECASE)
_KEEP = len(b"content-length:") - 1  # garbage bytes kept at the end of the buffer: a header may start in them


def _prefix_pattern(word: bytes, tail: bytes) -> bytes:
    """A pattern for any non-empty prefix of `word` followed by `tail` (itself optional): c, co, ..., word+tail."""
    pattern = b"(?:" + tail + b")?"
    for i in range(len(word) - 1, -1, -1):
        pattern = b"(?:" + re.escape(word[i : i + 1]) + pattern + b")" + (b"?" if i else b"")
    return pattern


# The start of a Content-Length header line whose end has not arrived yet, at the end of the buffer.
_HEADER_STARTED = re.compile(_prefix_pattern(b"content-length:", rb"[ \t]*[0-9]*[ \t]*\r?") + rb"\Z", re.IGNORECASE)
# LSP's notifications: the methods whose message type has no id.
NOTIFICATIONS = frozenset(m for m, (kind, *_) in t.METHOD_TO_TYPES.items() if "id" not in attrs.fields_dict(kind))


@dataclass(frozen=True)
class Body:
    """A message body as framed (not yet parsed); `problem`: what was wrong with its framing, if anything."""

    data: bytes
    problem: str = ""


@dataclass(frozen=True)
class Garbled:
    """Bytes that were no message, skipped; `answer`: tell the client (an error response with a null id)."""

    reason: str
    answer: bool = False


class FrameParser:
    """LSP's base protocol (headers, a blank line, a body of Content-Length bytes), parsed incrementally and
    resynchronised after anything malformed: `feed` it bytes, then take `next()` until it returns None."""

    def __init__(self, max_body: int = MAX_BODY_BYTES) -> None:
        self.max_body = max_body
        self._buf = bytearray()
        self._headers = 0  # header lines read of the current message
        self._pending: int | None = None  # its Content-Length, once read
        self._length: int | None = None  # the body to read, once the headers ended
        self._scanned = 0  # body bytes already searched for a header
        self._skipped = 0  # garbage bytes skipped since the last message
        self._skip_reason = ""

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> Body | Garbled | None:
        """The next body or framing problem, or None until more bytes are fed."""
        while True:
            if self._length is not None:
                return self._body()
            nl = self._buf.find(b"\n", 0, MAX_HEADER_LINE)
            if nl < 0:
                if len(self._buf) < MAX_HEADER_LINE:
                    return None
                self._skip(len(self._buf), f"a header line over {MAX_HEADER_LINE} bytes")
                continue
            line = bytes(self._buf[: nl + 1])
            if line in (b"\r\n", b"\n"):
                del self._buf[: nl + 1]
                if self._pending is not None:
                    self._length, self._pending, self._headers, self._scanned = self._pending, None, 0, 0
                elif self._headers:
                    self._headers = 0
                    return Garbled("a message without a Content-Length header")
                continue  # a blank line between messages: nothing lost
            header = _HEADER.fullmatch(line)
            if header is None:
                self._skip(nl + 1, f"not a header: {line[:40]!r}")
                continue
            if self._skipped:
                return self._skip_report()
            del self._buf[: nl + 1]
            self._headers += 1
            if self._headers > MAX_HEADERS:
                self._reset()
                return Garbled(f"over {MAX_HEADERS} header lines")
            if header.group(1).lower() == b"content-length":
                value = header.group(2)
                if not value.isdigit():
                    self._reset()
                    return Garbled(f"Content-Length {value[:40]!r} is not a number")
                if len(value) > 12 or int(value) > self.max_body:
                    self._reset()
                    text = value[:24].decode("ascii")
                    return Garbled(f"Content-Length {text} is over the {self.max_body} byte limit", answer=True)
                self._pending = int(value)

    def _body(self) -> Body | None:
        """The body, once its Content-Length bytes are there; cut short where a header line starts inside them (the
        declared length ran into the next message: that line may end past the declared end, so it is looked for up
        to a header line's length beyond it, and waited for while it has only begun)."""
        assert self._length is not None
        n, buf = self._length, self._buf
        end = min(n + MAX_HEADER_LINE, len(buf))
        found = _HEADER_IN_BODY.search(buf, max(0, self._scanned - MAX_HEADER_LINE), end)
        if found is not None and found.start() < n:  # the Content-Length was longer than the body
            data = bytes(buf[: found.start()])
            del buf[: found.start()]
            self._length = None
            return Body(data, f"Content-Length {n} ran into the next message after {len(data)} bytes")
        self._scanned = end
        if len(buf) < n:
            return None
        started = _HEADER_STARTED.search(buf, max(0, len(buf) - MAX_HEADER_LINE))
        if started is not None and started.start() < n and len(buf) < n + MAX_HEADER_LINE:
            return None  # a header line begun inside the body: wait for its end (a body that is JSON never ends so)
        data = bytes(buf[:n])
        del buf[:n]
        self._length = None
        return Body(data)

    def _skip(self, end: int, reason: str) -> None:
        """Drops bytes up to `end` (or to a Content-Length header in them, past the first byte, which always goes:
        the parser moves on). The count and the first reason are reported once the next header is read."""
        found = _CONTENT_LENGTH.search(self._buf, 1)
        if found is not None and found.start() <= end:
            end = found.start()
        elif end >= len(self._buf):
            end = max(1, len(self._buf) - _KEEP)
        del self._buf[:end]
        self._skipped += end
        self._skip_reason = self._skip_reason or reason
        self._headers, self._pending = 0, None

    def _skip_report(self) -> Garbled:
        report = Garbled(f"skipped {self._skipped} bytes that were no message ({self._skip_reason})")
        self._skipped, self._skip_reason = 0, ""
        return report

    def _reset(self) -> None:
        self._headers, self._pending, self._length = 0, None, None


class Phase(enum.Enum):
    NEW = "new"  # before `initialize`
    RUNNING = "running"  # `initialize` received
    SHUTDOWN = "shutdown"  # `shutdown` received
    EXITED = "exited"  # `exit` received, or stdin ended


class _Answered:
    """Stands in for a message already answered here; pygls' dispatcher skips it (not JSON-RPC 2.0)."""

    jsonrpc = "answered"


def _valid_id(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


class RyzansteinProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase = Phase.NEW
        self.exit_code = 1  # the process's, when it ends: 0 only after `shutdown` then `exit` (or end of stdin)
        self._initialized_seen = False
        self._done = threading.Event()

    # ---- reading -----------------------------------------------------------------------------------------------

    async def serve(self, stdin: BinaryIO) -> int:
        """Reads and handles messages from `stdin` until `exit` or its end; returns the exit code. The reading
        runs on a daemon thread (never left blocking the process's end) a bounded number of chunks ahead."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes] = asyncio.Queue(QUEUED_CHUNKS)
        threading.Thread(target=_pump, args=(stdin, chunks, loop), name="lsp-reader", daemon=True).start()
        parser = FrameParser()
        while not self._done.is_set():  # `exit` sets it (handled within `receive`)
            frame = parser.next()
            if frame is None:
                chunk = await chunks.get()
                if not chunk:
                    self._end_of_input(parser.buffered)
                    break
                parser.feed(chunk)
            elif isinstance(frame, Garbled):
                log.warning("framing: %s", frame.reason)
                if frame.answer:
                    self._send_error(None, JsonRpcInvalidRequest(f"message refused: {frame.reason}"))
            else:
                if frame.problem:
                    log.warning("framing: %s", frame.problem)
                self.receive(frame.data)
                await asyncio.sleep(0)  # let what the message started run before the next one
        return self.exit_code

    def _end_of_input(self, unread: int) -> None:
        if self.phase is not Phase.EXITED:
            self.exit_code = 0 if self.phase is Phase.SHUTDOWN else 1
            how = "after shutdown" if self.exit_code == 0 else "without shutdown and exit"
            log.info("stdin ended %s%s", how, f" ({unread} bytes of an unfinished message left)" if unread else "")
        self.phase = Phase.EXITED

    def receive(self, body: bytes) -> None:
        """One framed message: parsed, checked to be JSON-RPC, then handled (errors answered as JSON-RPC says)."""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            log.warning("a message that is not JSON (%d bytes): %s", len(body), str(exc)[:200])
            self._send_error(None, JsonRpcParseError(f"not a JSON message: {str(exc)[:200]}"))
            return
        problem = _not_json_rpc(data)
        if problem:
            msg_id = data.get("id") if isinstance(data, dict) and _valid_id(data.get("id")) else None
            is_response = isinstance(data, dict) and "method" not in data and ("result" in data or "error" in data)
            log.warning("not a JSON-RPC message (%s): %.200r", problem, data)
            if not is_response:  # a broken response is dropped: the client does not wait for an answer to it
                self._send_error(msg_id, JsonRpcInvalidRequest(f"not a JSON-RPC 2.0 message: {problem}"))
            return
        method, is_request = data.get("method"), "method" in data and "id" in data
        refused = self._refused(method, is_request)
        if refused is not None:
            if is_request:
                self._send_error(data["id"], refused)
            else:
                log.warning("dropped %s: %s", method or "a response", refused.message)
            return
        if method is not None:
            data.setdefault("params", None)  # pygls' generic message types need the field
        try:
            message = self.structure_message(data)
        except Exception as exc:  # a notification or response that cannot be read (requests are answered)
            log.warning("dropped %s: %s", method or "a response", exc.__cause__ or exc)
            return
        if isinstance(message, _Answered):
            return
        if method == t.INITIALIZE:
            self.phase = Phase.RUNNING
        elif method == t.INITIALIZED:
            self._initialized_seen = True
        elif method == t.SHUTDOWN:
            self.phase = Phase.SHUTDOWN
        try:
            self.handle_message(message)
        except Exception:
            log.exception("failed to handle %s", method or "a response")

    def _refused(self, method: str | None, is_request: bool) -> JsonRpcException | None:
        """The LSP life cycle's rules: why this message is not handled now (None: it is)."""
        if is_request and method in NOTIFICATIONS:
            return JsonRpcMethodNotFound(
                f"{method} is a notification: there is no request by that name (send it without an id)"
            )
        if method == t.EXIT:
            return None  # always (lsp_exit)
        if self.phase is Phase.NEW:
            if method is None or (method == t.INITIALIZE and is_request):
                return None
            return JsonRpcServerNotInitialized(f"{method}: the server is not initialized")
        if self.phase is not Phase.RUNNING:
            return JsonRpcInvalidRequest(f"{method or 'a response'}: the server is shutting down")
        if method == t.INITIALIZE:
            return JsonRpcInvalidRequest("initialize: the server is already initialized")
        if method == t.INITIALIZED and self._initialized_seen:
            return JsonRpcInvalidRequest("initialized: already received (the model loads once)")
        return None

    def _send_error(self, msg_id: int | str | None, error: JsonRpcException) -> None:
        if msg_id is None:  # pygls' converter would leave the id out; JSON-RPC wants "id": null
            self._send_data({"jsonrpc": "2.0", "id": None, "error": {"code": error.code, "message": error.message}})
        else:
            self._send_response(msg_id, error=error.to_response_error())

    # ---- pygls, fixed ------------------------------------------------------------------------------------------

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except Exception as exc:
            if "id" in data and "method" in data:
                log.warning("malformed %s request %r: %s", data.get("method"), data.get("id"), exc.__cause__ or exc)
                err = JsonRpcInvalidParams(f"invalid params for {data.get('method')}: {exc.__cause__ or exc}")
                self._send_response(data["id"], error=err.to_response_error())
                return _Answered()
            raise

    @lsp_method(t.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """Ends the reading (and so the process, with `exit_code`): 0 after `shutdown`, 1 without (LSP)."""
        if (user_handler := self.fm.features.get(t.EXIT)) is not None:
            yield user_handler, args, None
        self.exit_code = 0 if self.phase is Phase.SHUTDOWN else 1
        self.phase = Phase.EXITED
        log.info("exit %s shutdown", "after" if self.exit_code == 0 else "without")
        self._done.set()

    @lsp_method(t.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        """pygls' own, over a copy of the requests in flight: cancelling one drops it from the dict
        (`_forget`)."""
        if (user_handler := self.fm.features.get(t.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()
        self._shutdown = True

    @lsp_method(t.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: t.DidChangeTextDocumentParams) -> Generator[Any, Any, None]:
        """pygls' own, except that a change to a document that is not open is dropped with a warning (pygls raises
        KeyError, which shows the user an error)."""
        if unquote(params.text_document.uri) not in self.workspace.text_documents:
            log.warning("dropped a change to %s, which is not open", params.text_document.uri)
            return
        yield from super().lsp_text_document__did_change(params)

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Callable[[Future[Any]], None],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:  # pygls removes a request's future once answered, a notification's never
            future.add_done_callback(partial(self._forget, msg_id))

    def _forget(self, msg_id: Any, future: Future[Any]) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        if not _valid_id(msg_id):  # pygls would fail on an id it cannot look up (a list, an object)
            log.warning("dropped $/cancelRequest for id %.60r", msg_id)
            return
        super()._handle_cancel_notification(msg_id)

    def _handle_response(self, msg_id: Any, result: Any | None = None, error: Any | None = None) -> None:
        self._result_types.pop(msg_id, None)  # pygls forgets it only for results, not for error responses
        super()._handle_response(msg_id, result, error)

    def use_workspace(self, workspace: Workspace) -> None:
        """Puts `workspace` in place of the one pygls made at initialize (documents.ClientDocuments: how documents
        the client has not opened are read)."""
        self._workspace = workspace


def _not_json_rpc(data: Any) -> str:
    """What makes `data` no JSON-RPC 2.0 message this server takes ("" for nothing)."""
    if not isinstance(data, dict):
        return "a batch (not in LSP)" if isinstance(data, list) else f"a JSON {type(data).__name__}, not an object"
    if data.get("jsonrpc") != "2.0":
        return '"jsonrpc" is not "2.0"'
    if "id" in data and not _valid_id(data["id"]):
        return '"id" is not a string or an integer'
    if "method" in data:
        if not isinstance(data["method"], str):
            return '"method" is not a string'
        if "result" in data or "error" in data:
            return "both a request and a response"
        return ""
    if "result" in data or "error" in data:
        return "" if "id" in data else "a response without an id"
    return 'no "method", "result" or "error"'


def _pump(stdin: BinaryIO, chunks: asyncio.Queue[bytes], loop: asyncio.AbstractEventLoop) -> None:
    """The reader thread: stdin's bytes into `chunks` (waiting while it is full) until the end (b"")."""
    read = _raw_reader(stdin)
    while True:
        try:
            chunk = read(READ_CHUNK)
        except (OSError, ValueError) as exc:
            log.error("stdin could not be read: %s", exc)
            chunk = b""
        try:
            asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()
        except (RuntimeError, CancelledError, asyncio.CancelledError):  # the loop is gone: the server is ending
            return
        if not chunk:
            return


def _raw_reader(stdin: BinaryIO) -> Callable[[int], bytes]:
    """Reads what is there (not all n bytes). From the file descriptor where there is one: a thread blocked in
    the buffered stream's read would hold its lock, which the interpreter takes at its end (a fatal error)."""
    try:
        fd = stdin.fileno()
    except (OSError, ValueError, AttributeError):  # an in-memory stream (tests)
        read1: Callable[[int], bytes] = getattr(stdin, "read1", stdin.read)
        return read1
    return partial(os.read, fd)
