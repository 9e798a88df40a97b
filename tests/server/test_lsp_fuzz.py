"""Fuzzing `python -m pyserver` over a raw pipe: broken framing (lengths, header bytes, garbage), bodies that are
not JSON or not JSON-RPC, and the params of the real methods and commands, shaped and misshaped. After each
fuzzed message a ping must be answered: no crash, no hang, no request left unanswered.

A few hundred messages by default (seconds); RYZANSTEIN_FUZZ_MESSAGES=10000 for a long run. One server (with the
small test model, so completions and refactors really run) for the module."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyserver.bench.soak import LspPipe, frame
from tests.server.test_lsp import model_path

MESSAGES = int(os.environ.get("RYZANSTEIN_FUZZ_MESSAGES", "300"))
ANSWER_S = 20.0
# Every command but those that reach the network (download) or run the tests they write (writeTests).
COMMANDS = [
    "ryzanstein.sidecar.explain",
    "ryzanstein.sidecar.docstring",
    "ryzanstein.sidecar.rewrite",
    "ryzanstein.sidecar.status",
    "ryzanstein.sidecar.acceptance",
    "ryzanstein.sidecar.models",
    "ryzanstein.sidecar.cancelDownload",
    "ryzanstein.sidecar.reindex",
    "ryzanstein.sidecar.search",
]
SETTINGS = ["maxTokens", "maxLines", "timeBudgetMs", "enable", "languages", "trigger", "minConfidence", "indexExclude"]


class Run:
    pipe: LspPipe
    doc_uri: str
    file_uri: str
    sent = 0
    pings = 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[type[Run]]:
    root = tmp_path_factory.mktemp("fuzz")
    folder = root / "ws"
    folder.mkdir()
    (folder / "shapes.py").write_text("def area(w, h):\n    return w * h\n\n\nclass Box:\n    size = 3\n")
    with (root / "server.log").open("wb") as log:
        pipe = LspPipe(stderr=log)
        settings = {"modelPath": str(model_path()), "storagePath": str(root / "storage"), "maxTokens": 6}
        pipe.initialize({**settings, "timeBudgetMs": 300, "refactorMaxTokens": 24}, folder)
        for _ in range(300):
            state = pipe.request("workspace/executeCommand", {"command": "ryzanstein.sidecar.status"})
            if state["result"]["state"] == "ready":
                break
            time.sleep(0.05)
        Run.pipe, Run.file_uri = pipe, (folder / "shapes.py").as_uri()
        Run.doc_uri = (folder / "open.py").as_uri()
        text = "import os\n\ndef f(x):\n    return x\n"
        pipe.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": Run.doc_uri, "languageId": "python", "version": 1, "text": text}},
        )
        started = time.monotonic()
        yield Run
        elapsed = time.monotonic() - started
        alive = pipe.proc.poll() is None
        code = pipe.close()
    print(f"\nfuzz: {Run.sent} messages, {Run.pings} pings answered, {elapsed:.1f} s, exit code {code}")
    tail = (root / "server.log").read_text(errors="replace")[-3000:]
    assert alive and code == 0, tail


# ---- what is sent -------------------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["", "file:///", "\x00", "🎉" * 3])
)
values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = values) -> st.SearchStrategy[Any]:
    """`good` four times in five, else `bad`: misshaped values now and then, the shapes handlers read mostly."""
    return st.integers(0, 4).flatmap(lambda n: bad if n == 0 else good)


numbers = st.integers(-3, 40) | st.integers(-(2**40), 2**40) | values


def uris() -> st.SearchStrategy[Any]:
    known = st.sampled_from(
        [
            Run.doc_uri,
            Run.file_uri,
            Run.file_uri + "x",
            "file:///dev/zero",
            "file:///etc/passwd",
            "untitled:Untitled-1",
            "file:///",
            "file://host/share/x.py",
        ]
    )
    return st.one_of(known, known, st.text(max_size=30), values)


def position() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"line": numbers, "character": numbers}) | values


def a_range() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"start": position(), "end": position()}) | values


def document(**extra: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({"uri": uris(), **extra}) | values


def command_arguments() -> st.SearchStrategy[Any]:
    shaped = st.fixed_dictionaries(
        {"uri": uris()},
        optional={
            "range": a_range(),
            "position": position(),
            "mode": st.sampled_from(["add", "update", "x"]),
            "instruction": st.text(max_size=20),
            "event": st.sampled_from(["accepted", "accepted_word", "dismissed"]) | values,
            "query": st.text(max_size=20),
            "force": values,
        },
    )
    return st.lists(shaped | values, max_size=2) | values


def params_of(method: str) -> st.SearchStrategy[Any]:
    change = st.fixed_dictionaries({"range": a_range(), "text": st.text(max_size=20)}) | st.fixed_dictionaries(
        {"text": st.text(max_size=60)}
    )
    by_method: dict[str, st.SearchStrategy[Any]] = {
        "textDocument/didOpen": st.fixed_dictionaries(
            {
                "textDocument": document(
                    languageId=st.sampled_from(["python", "javascript", "markdown"]) | values,
                    version=numbers,
                    text=st.text(max_size=200) | values,
                )
            }
        ),
        "textDocument/didChange": st.fixed_dictionaries(
            {"textDocument": document(version=numbers), "contentChanges": st.lists(change, max_size=3) | values}
        ),
        "textDocument/didClose": st.fixed_dictionaries({"textDocument": document()}),
        "textDocument/didSave": st.fixed_dictionaries({"textDocument": document()}),
        "textDocument/inlineCompletion": st.fixed_dictionaries(
            {
                "textDocument": document(),
                "position": position(),
                "context": st.fixed_dictionaries({"triggerKind": st.integers(0, 3) | values}) | values,
            }
        ),
        "ryzanstein/cursorRest": st.fixed_dictionaries({"uri": uris(), "position": position()}),
        "$/cancelRequest": st.fixed_dictionaries({"id": values}),
        "$/setTrace": st.fixed_dictionaries({"value": st.sampled_from(["off", "messages", "verbose"]) | values}),
        "workspace/executeCommand": st.fixed_dictionaries(
            {"command": st.sampled_from(COMMANDS) | st.text(max_size=20), "arguments": command_arguments()}
        ),
        "workspace/didChangeConfiguration": st.fixed_dictionaries(
            {"settings": st.fixed_dictionaries({"ryzanstein": st.dictionaries(st.sampled_from(SETTINGS), values)})}
        ),
        "initialize": st.fixed_dictionaries({"processId": values, "capabilities": values}),
        "initialized": st.just({}),
        "ryzanstein/ping": values,
    }
    return mostly(by_method.get(method, values))


methods = st.sampled_from(
    [
        "textDocument/didOpen",
        "textDocument/didChange",
        "textDocument/didClose",
        "textDocument/didSave",
        "textDocument/inlineCompletion",
        "ryzanstein/cursorRest",
        "$/cancelRequest",
        "$/setTrace",
        "workspace/executeCommand",
        "workspace/didChangeConfiguration",
        "initialize",
        "initialized",
        "ryzanstein/ping",
    ]
) | st.text(max_size=20).filter(lambda m: m not in ("exit", "shutdown"))


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(methods)
    message: dict[str, Any] = {"jsonrpc": draw(mostly(st.just("2.0"))), "method": method}
    if draw(mostly(st.just(True), st.just(False))):
        message["params"] = draw(params_of(method))
    if draw(st.booleans()):
        message["id"] = draw(mostly(st.text(max_size=8) | st.integers(-(2**63), 2**63)))
    return message


@st.composite
def wire(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(bytes to send, whether their framing is broken: then the ping right after may be lost with them)."""
    message = draw(messages())
    body = json.dumps(message, ensure_ascii=draw(st.booleans())).encode()
    how = draw(st.sampled_from(["good"] * 6 + ["length", "header", "garbage", "huge", "body"]))
    if how == "good":
        return frame(body), False
    if how == "body":  # framed right, the body broken: a parse error, the next message is served
        cut = draw(st.integers(0, len(body)))
        return frame(body[:cut] + draw(st.binary(max_size=20)).replace(b"\n", b"")), False
    if how == "length":
        delta = draw(st.integers(-len(body), 400).filter(lambda d: d != 0))
        return b"Content-Length: %d\r\n\r\n" % (len(body) + delta) + body, True
    if how == "header":
        header = draw(
            st.binary(max_size=40)
            | st.sampled_from([b"Content-Length: ", b"Content-Length:\t-1", b"Content-Type: x", b"\xff\xfe"])
        )
        return header + draw(st.sampled_from([b"\r\n", b"\n", b""])) + frame(body), True
    if how == "huge":
        return b"Content-Length: %d\r\n\r\n" % draw(st.integers(64 * 2**20 + 1, 2**80)) + body, True
    return draw(st.binary(max_size=300)), True


@settings(
    max_examples=MESSAGES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(case=wire())
def test_fuzzed_messages_never_stop_the_server(run: type[Run], case: tuple[bytes, bool]) -> None:
    data, broken = case
    pipe = run.pipe
    pipe.write(data)
    run.sent += 1
    first = pipe.request_nowait("ryzanstein/ping")
    if broken:  # the ping may go with the broken message: the one after it may not
        second = pipe.request_nowait("ryzanstein/ping")
        answer = pipe.wait(second, ANSWER_S)
        pipe.wait(first, 0)
    else:
        answer = pipe.wait(first, ANSWER_S)
    assert pipe.proc.poll() is None, f"the server died after {data[:300]!r}"
    assert answer is not None and "result" in answer, f"no answer to a ping after {data[:300]!r}: {answer}"
    run.pings += 1


def test_the_model_was_served(run: type[Run]) -> None:
    """The fuzz ran against a server that really completes (not one that answers everything empty)."""
    pipe = run.pipe
    pipe.notify("$/setTrace", {"value": "off"})
    answer = pipe.request(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": Run.file_uri}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 1}},
    )
    assert "result" in answer or answer["error"]["code"] == -32602, answer
    status = pipe.request("workspace/executeCommand", {"command": "ryzanstein.sidecar.status"})
    assert status["result"]["state"] in ("ready", "busy", "idle"), status
