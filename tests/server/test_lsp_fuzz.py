"""Fuzzing `python -m pyserver` over a raw pipe: broken framing (lengths, header bytes, garbage), bodies that are
not JSON or not JSON-RPC, and the params of the real methods and commands, shaped and misshaped. After each
fuzzed message a ping must be answered: no crash, no hang. And JSON-RPC's rule, for every message framed right:
one with a valid id (a string or an integer) and a method is a request, whatever the method (a notification's
name included), and gets exactly one response with that id (a result or an error); one whose id is not valid, and
a body that is not a JSON-RPC message, gets exactly one error with `"id": null`.

A few hundred messages by default (seconds); RYZANSTEIN_FUZZ_MESSAGES=10000 for a long run. One server (with the
small test model, so completions and refactors really run) for the module."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    requests: Counter[Any] = Counter()  # fuzzed requests framed right, by id: each must get one response
    maybe: Counter[Any] = Counter()  # those framed wrong, which may get one
    used_ids: set[str | int] = set()
    methods: dict[Any, Any] = {}  # request id -> its method, for the failure message


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
        "workspace/didChangeWorkspaceFolders",
        "window/workDoneProgress/cancel",
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
    if draw(st.booleans()):  # (never one of the pings' ids, r1, r2, ...)
        ids = st.text(max_size=8).filter(lambda i: not PING_ID.fullmatch(i)) | st.integers(-(2**63), 2**63)
        message["id"] = draw(mostly(ids))
    return message


PING_ID = re.compile(r"r[0-9]+")


def expected_answer(body: bytes) -> str:
    """What JSON-RPC 2.0 says a body framed right gets: "request" (exactly one response with its id), "null" (exactly
    one error with a null id: not JSON, not an object, an id that is no id, or an Invalid Request without an id) or
    "nothing" (a notification)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "null"
    if not isinstance(data, dict) or "method" not in data:  # (the fuzzed messages all have a method)
        return "null"
    if "id" in data:
        valid = isinstance(data["id"], (str, int)) and not isinstance(data["id"], bool)
        return "request" if valid else "null"
    return "nothing" if data.get("jsonrpc") == "2.0" and isinstance(data["method"], str) else "null"


@dataclass(frozen=True)
class Case:
    """A fuzzed message and how it goes on the wire: `wire(body)` gives the bytes to send and the body as framed
    (None where the framing is broken: then the ping after it may be lost with it)."""

    message: dict[str, Any]
    ensure_ascii: bool
    wire: Callable[[bytes], tuple[bytes, bytes | None]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    message = draw(messages())
    how = draw(st.sampled_from(["good"] * 6 + ["length", "header", "garbage", "huge", "body"]))
    wire: Callable[[bytes], tuple[bytes, bytes | None]]
    if how == "good":
        wire = lambda body: (frame(body), body)  # noqa: E731
    elif how == "body":  # framed right, the body broken: a parse error, the next message is served
        cut, junk = draw(st.integers(0, 2000)), draw(st.binary(max_size=20)).replace(b"\n", b"")
        wire = lambda body: (frame(body[:cut] + junk), body[:cut] + junk)  # noqa: E731
    elif how == "length":
        delta = draw(st.integers(-2000, 400).filter(lambda d: d != 0))
        wire = lambda body: (b"Content-Length: %d\r\n\r\n" % max(0, len(body) + delta) + body, None)  # noqa: E731
    elif how == "header":
        header = draw(
            st.binary(max_size=40)
            | st.sampled_from([b"Content-Length: ", b"Content-Length:\t-1", b"Content-Type: x", b"\xff\xfe"])
        )
        header += draw(st.sampled_from([b"\r\n", b"\n", b""]))
        wire = lambda body: (header + frame(body), None)  # noqa: E731
    elif how == "huge":
        length = draw(st.integers(64 * 2**20 + 1, 2**80))
        wire = lambda body: (b"Content-Length: %d\r\n\r\n" % length + body, None)  # noqa: E731
    else:
        garbage = draw(st.binary(max_size=300))
        wire = lambda body: (garbage, None)  # noqa: E731
    return Case(message, draw(st.booleans()), wire)


def unique_id(msg_id: str | int, used: set[str | int]) -> str | int:
    """`msg_id`, or a variant of it not used yet: a fuzzed id is sent once, so each response can be told apart."""
    n, candidate = 0, msg_id
    while candidate in used:
        n += 1
        candidate = f"{msg_id}~{n}" if isinstance(msg_id, str) else msg_id + n
    used.add(candidate)
    return candidate


@settings(
    max_examples=MESSAGES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(case=cases())
def test_fuzzed_messages_never_stop_the_server(run: type[Run], case: Case) -> None:
    pipe, message = run.pipe, dict(case.message)
    msg_id = message.get("id")
    request = "method" in message and isinstance(msg_id, (str, int)) and not isinstance(msg_id, bool)
    if request:
        message["id"] = unique_id(message["id"], run.used_ids)
    data, body = case.wire(json.dumps(message, ensure_ascii=case.ensure_ascii).encode())
    nulls_before = len(pipe.errors_without_id)
    pipe.write(data)
    run.sent += 1
    first = pipe.request_nowait("ryzanstein/ping")
    if body is None:  # the ping may go with the broken message: the one after it may not
        second = pipe.request_nowait("ryzanstein/ping")
        answer = pipe.wait(second, ANSWER_S)
        pipe.wait(first, 0)
    else:
        answer = pipe.wait(first, ANSWER_S)
    assert pipe.proc.poll() is None, f"the server died after {data[:300]!r}"
    assert answer is not None and "result" in answer, f"no answer to a ping after {data[:300]!r}: {answer}"
    run.pings += 1
    if body is None:
        if request:  # it may have been read whole, or not
            run.maybe[message["id"]] += 1
        return
    expected = expected_answer(body)
    if expected == "request":
        run.requests[message["id"]] += 1  # answered now or later (a refactor takes a while)
        run.methods[message["id"]] = message["method"]
    # A null-id error is sent as the message is read, so before the ping's answer.
    nulls = len(pipe.errors_without_id) - nulls_before
    assert nulls == (1 if expected == "null" else 0), f"{nulls} errors with a null id after {data[:300]!r}"


def test_every_request_got_exactly_one_response(run: type[Run]) -> None:
    """The fuzzed requests (framed right, a valid id) got one response each by the end: a result or an error."""
    pipe = run.pipe

    def fuzzed_answers() -> Counter[Any]:
        return Counter({i: n for i, n in pipe.answers.items() if not (isinstance(i, str) and PING_ID.fullmatch(i))})

    deadline = time.monotonic() + 120  # refactors under way finish (or fail) first
    while any(fuzzed_answers()[i] < n for i, n in run.requests.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    pipe.request("ryzanstein/ping")  # anything still being sent has arrived
    answers = fuzzed_answers()
    unanswered = [i for i, n in run.requests.items() if answers[i] < n]
    extra = {i: n for i, n in answers.items() if n > run.requests[i] + run.maybe[i]}
    assert not unanswered and not extra, (
        f"of {sum(run.requests.values())} requests, {len(unanswered)} unanswered "
        f"({Counter(str(run.methods[i]) for i in unanswered).most_common()}), "
        f"{len(extra)} answered more than once: {dict(list(extra.items())[:20])}"
    )


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
