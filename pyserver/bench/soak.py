"""`python -m pyserver bench soak [--minutes 10] [--rate 3.33] [--model FILE | --shape 2b4t]`: the sidecar typed
into for minutes, as an editor would, while it really generates.

The real server (`python -m pyserver`) runs as a subprocess over stdio with a temporary workspace of a few real
Python files (from the interpreter's standard library, indexed as a workspace is). One document is open; every
1/rate seconds (by default 300 ms: time for the model to answer) a character is typed into it
(`textDocument/didChange`) and an inline completion is asked for at the cursor, without waiting for the last one (a
newer request supersedes an older one, as in the editor). The confidence gate is off (`minConfidence` 0), so every
generation that finishes is a suggestion sent back: the soak counts them. The typed text is deleted again every few
thousand characters so the document stays the size of a real one. The model: the shipped one, any file, or a
random-weight model at a real tier's shape with the shipped model's vocabulary (`--shape 2b4t`: written once into
the benchmarks' cache, ~1.2 GB, as `bench completion --shape` writes it).

Reported (JSON): the server's resident memory sampled every few seconds and its slope after a warm-up (MB/min, by
least squares), threads and open file descriptors, the requests' latency (p50/p95/max), the suggestions produced,
requests that were never answered, error answers, and whether the server died (a crash) or exited other than 0
after shutdown and exit. Targets: a slope under 0.5 MB/min after the warm-up, no unanswered request, suggestions
produced.

`LspPipe`, the raw JSON-RPC client it uses, also drives the LSP fuzz test (tests/server/test_lsp_fuzz.py).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import psutil

from pyserver.models import default_model_path

TARGETS = {"rss_slope_mb_per_min": 0.5, "unanswered": 0}
RATE_PER_S = 1 / 0.3  # a keystroke every 300 ms
SAMPLE_EVERY_S = 5.0
RESET_EVERY_CHARS = 3000  # typed text is deleted again after this many characters
# A few real files for the workspace (and the index): modules of the standard library.
WORKSPACE_FILES = ("textwrap.py", "bisect.py", "colorsys.py", "heapq.py", "shlex.py", "fnmatch.py")
TYPED_FROM = "heapq.py"  # the text typed into the open document comes from here


class LspPipe:
    """A language server as a subprocess, spoken to in raw JSON-RPC over its stdin and stdout: every message
    framed with a Content-Length header (`write` sends bytes as they are, broken framing included). A reader
    thread keeps the responses by id with their arrival time; the server's own requests are answered with a null
    result (as a client that accepts a progress token); its notifications are counted by method."""

    def __init__(
        self,
        command: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    ) -> None:
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "pyserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=None if env is None else dict(env),
        )
        self.responses: dict[Any, tuple[float, dict[str, Any]]] = {}  # id -> (arrival, message)
        self.answers: Counter[Any] = Counter()  # responses per id, however many came (each should get one)
        self.errors_without_id: list[dict[str, Any]] = []
        self.notifications: Counter[str] = Counter()
        self._arrived = threading.Condition()
        self._write_lock = threading.Lock()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, name="lsp-pipe-reader", daemon=True)
        self._reader.start()

    # ---- sending ----

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.write(frame(message))

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request_nowait(self, method: str, params: Any = None) -> str:
        """Sends a request; returns its id (the answer is in `responses` once it came, see `wait`)."""
        with self._write_lock:
            self._next_id += 1
            msg_id = f"r{self._next_id}"
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    def request(self, method: str, params: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        """The server's answer to a request (the whole message); TimeoutError if none came in time."""
        msg_id = self.request_nowait(method, params)
        answer = self.wait(msg_id, timeout)
        if answer is None:
            raise TimeoutError(f"no answer to {method} ({msg_id}) within {timeout} s")
        return answer

    def wait(self, msg_id: str, timeout: float) -> dict[str, Any] | None:
        """The answer to `msg_id` (taken out of `responses`), or None if it did not come within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while msg_id not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._arrived.wait(min(left, 0.5))
            return self.responses.pop(msg_id)[1]

    def initialize(self, settings: Mapping[str, Any], folder: Path | None = None, timeout: float = 60.0) -> None:
        uri = folder.resolve().as_uri() if folder is not None else None
        params = {
            "processId": None,
            "rootUri": uri,
            "capabilities": {"window": {"workDoneProgress": True}},
            "workspaceFolders": [{"uri": uri, "name": folder.name}] if folder is not None else None,
            "initializationOptions": {"ryzanstein": dict(settings)},
        }
        answer = self.request("initialize", params, timeout)
        if "result" not in answer:
            raise RuntimeError(f"initialize failed: {answer}")
        self.notify("initialized", {})

    def close(self, timeout: float = 30.0) -> int:
        """shutdown, exit, and the exit code (the process is killed if it does not end: -9)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, TimeoutError):
                self.request("shutdown", None, timeout)
                self.notify("exit")
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode

    # ---- receiving ----

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._arrived:
                        self._arrived.notify_all()
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                continue
            message: dict[str, Any] = json.loads(out.read(length))
            if "method" in message:
                if "id" in message:
                    self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                else:
                    self.notifications[message["method"]] += 1
            elif message.get("id") is None:
                self.errors_without_id.append(message)
            else:
                msg_id = message["id"]
                key = msg_id if isinstance(msg_id, (str, int)) else repr(msg_id)  # (an id JSON-RPC does not allow)
                with self._arrived:
                    self.responses[key] = (time.perf_counter(), message)
                    self.answers[key] += 1
                    self._arrived.notify_all()


def frame(message: dict[str, Any] | bytes) -> bytes:
    """A message (or a body as it is) with its Content-Length header."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def slope_per_minute(times_s: list[float], values: list[float]) -> float:
    """The least-squares slope of values over time, per minute."""
    if len(times_s) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(times_s) / 60.0, np.asarray(values), 1)[0])


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {"start": round(float(a[0]), 1), "end": round(float(a[-1]), 1), "max": round(float(a.max()), 1)}


@contextlib.contextmanager
def _workspace() -> Iterator[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    with tempfile.TemporaryDirectory(prefix="ryzanstein-soak-") as tmp:
        folder = Path(tmp) / "workspace"
        folder.mkdir()
        for name in WORKSPACE_FILES:
            if (stdlib / name).is_file():
                (folder / name).write_text((stdlib / name).read_text(encoding="utf-8"), encoding="utf-8")
        yield folder


def _position(text: str) -> dict[str, int]:
    """The LSP position of the end of `text` (UTF-16 columns; the typed text is ASCII)."""
    lines = text.split("\n")
    return {"line": len(lines) - 1, "character": len(lines[-1])}


def soak_model(model: Path | None = None, shape: str | None = None) -> Path:
    """The model to soak: `model`, else a random one at `shape` (the shipped model's vocabulary), else the shipped
    one."""
    shipped = default_model_path()
    if model is not None:
        return model
    if shipped is None:
        raise FileNotFoundError("no model given and no shipped model found in models/")
    if shape is None:
        return shipped
    from pyserver.bench.completion_latency import tier_proxy_file

    return tier_proxy_file(shape, shipped)  # a Bonsai shape: its Qwen3 file, as bench completion --shape


def run_soak(
    minutes: float = 10.0, rate: float = RATE_PER_S, model: Path | None = None, shape: str | None = None
) -> dict[str, Any]:
    """Types into the sidecar for `minutes` at `rate` keystrokes (each with a completion request) per second."""
    model = soak_model(model, shape)
    with _workspace() as folder, tempfile.TemporaryFile() as log:
        pipe = LspPipe(stderr=log)
        try:
            return _soak(pipe, folder, model, minutes, rate, log)
        finally:
            if pipe.proc.poll() is None:
                pipe.proc.kill()
                pipe.proc.wait()


def _soak(pipe: LspPipe, folder: Path, model: Path, minutes: float, rate: float, log: IO[bytes]) -> dict[str, Any]:
    process = psutil.Process(pipe.proc.pid)
    settings = {"modelPath": str(model), "storagePath": str(folder.parent / "storage"), "minConfidence": 0}
    pipe.initialize(settings, folder)
    loaded = time.monotonic() + 180
    while time.monotonic() < loaded:  # the model loads (and the index starts) before the typing does
        state = pipe.request("workspace/executeCommand", {"command": "ryzanstein.sidecar.status"})
        if state.get("result", {}).get("state") in ("ready", "error"):
            break
        time.sleep(0.2)
    uri = (folder / "typing.py").as_uri()
    base = (folder / "textwrap.py").read_text(encoding="utf-8") + "\n\n"
    typed_source = (folder / TYPED_FROM).read_text(encoding="utf-8")
    pipe.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": base}}
    )

    period, duration = 1.0 / rate, minutes * 60.0
    sent: dict[str, float] = {}  # request id -> when it was sent
    samples: list[tuple[float, float, int, int]] = []  # (t, rss MB, threads, fds)
    text, version, typed, source_at = base, 1, 0, 0
    start = time.perf_counter()
    next_key, next_sample = start, start
    crashed = False
    while (now := time.perf_counter()) - start < duration:
        if pipe.proc.poll() is not None:
            crashed = True
            break
        if now >= next_sample:
            samples.append(_sample(process, now - start))
            next_sample += SAMPLE_EVERY_S
        if now < next_key:
            time.sleep(min(next_key, next_sample) - now)
            continue
        next_key += period
        version += 1
        if typed >= RESET_EVERY_CHARS:  # delete what was typed: the document keeps a real size
            change = {"range": {"start": _position(base), "end": _position(text)}, "text": ""}
            text, typed = base, 0
        else:
            char = typed_source[source_at % len(typed_source)]
            source_at += 1
            change = {"range": {"start": _position(text), "end": _position(text)}, "text": char}
            text, typed = text + char, typed + 1
        pipe.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
        )
        msg_id = pipe.request_nowait(
            "textDocument/inlineCompletion",
            {"textDocument": {"uri": uri}, "position": _position(text), "context": {"triggerKind": 1}},
        )
        sent[msg_id] = time.perf_counter()
    typing_s = time.perf_counter() - start

    grace = time.monotonic() + 30  # what is still being computed gets its answer
    while not crashed and time.monotonic() < grace and any(i not in pipe.responses for i in sent):
        time.sleep(0.1)
    crashed = crashed or pipe.proc.poll() is not None
    if not crashed:
        samples.append(_sample(process, time.perf_counter() - start))
    latencies, errors, unanswered = [], Counter[int](), 0
    suggestions, suggested_chars = 0, 0
    for msg_id, at in sent.items():
        got = pipe.responses.pop(msg_id, None)
        if got is None:
            unanswered += 1
            continue
        latencies.append((got[0] - at) * 1e3)
        if "error" in got[1]:
            errors[int(got[1]["error"].get("code", 0))] += 1
        items = (got[1].get("result") or {}).get("items") or []
        if items and items[0].get("insertText"):
            suggestions += 1
            suggested_chars += len(items[0]["insertText"])
    exit_code = pipe.close() if not crashed else pipe.proc.returncode

    warmup = min(120.0, typing_s / 4)
    steady = [s for s in samples if s[0] >= warmup]
    slope = slope_per_minute([s[0] for s in steady], [s[1] for s in steady])
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    report: dict[str, Any] = {
        "model": model.name,
        "minutes": round(typing_s / 60, 2),
        "rate_per_s": rate,
        "requests": len(sent),
        "answered": len(latencies),
        "suggestions": suggestions,
        "suggested_chars": suggested_chars,
        "unanswered": unanswered,
        "error_answers": dict(errors),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
            "max": round(float(lat.max()), 1),
        },
        "warmup_s": round(warmup, 1),
        "rss_slope_mb_per_min": round(slope, 3),
        "rss_mb": _stats([s[1] for s in samples]),
        "rss_mb_after_warmup": _stats([s[1] for s in steady]),
        "threads": _stats([float(s[2]) for s in samples]),
        "open_fds": _stats([float(s[3]) for s in samples]),
        "samples": len(samples),
        "crashes": int(crashed),
        "exit_code": exit_code,
        "server_notifications": dict(pipe.notifications),
        "targets": {
            "rss_slope_below_0.5_mb_per_min": slope < TARGETS["rss_slope_mb_per_min"],
            "no_unanswered": unanswered == TARGETS["unanswered"],
            "no_crash": not crashed and exit_code == 0,
            "suggestions_produced": suggestions > 0,
        },
    }
    if crashed or exit_code != 0:
        log.seek(0)
        report["server_log_tail"] = log.read().decode("utf-8", "replace")[-4000:]
    return report


def _sample(process: psutil.Process, t: float) -> tuple[float, float, int, int]:
    try:
        if sys.platform == "win32":
            fds = process.num_handles()
        else:
            fds = process.num_fds()
        return (t, process.memory_info().rss / 2**20, process.num_threads(), fds)
    except psutil.Error:
        return (t, 0.0, 0, 0)
