"""The sidecar end to end over stdio with a real LSP client (pytest-lsp) and a real model."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_lsp
from lsprotocol import types as t
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.server.settings import ServerSettings
from tests.server.stdio_server import StdioServer
from tests.support.builders import random_model, write_gguf
from tests.support.lsp import capabilities

MODEL_DIR = Path(__file__).resolve().parent / "_model"
SETTINGS = {"maxTokens": 24, "timeBudgetMs": 60_000}


def model_path() -> Path:
    """A small random-weight model with FIM tokens, written once per test session."""
    path = MODEL_DIR / "m-v3.gguf"
    if not path.exists():
        MODEL_DIR.mkdir(exist_ok=True)
        m = random_model(np.random.default_rng(42), "bitnet", "TQ2_0", n_layer=2, vocab=320)
        m.token_embd[-5:] = 0.0  # special tokens (end-of-text among them) never win: generations run long
        write_gguf(m, path, context_length=8192)
    return path


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"]))
async def client(lsp_client: LanguageClient) -> Any:
    lsp_client.applied_versions = []  # type: ignore[attr-defined]

    @lsp_client.feature(t.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: t.ApplyWorkspaceEditParams) -> t.ApplyWorkspaceEditResult:
        lsp_client.applied_versions.append(params)  # type: ignore[attr-defined]
        return t.ApplyWorkspaceEditResult(applied=True)

    storage = MODEL_DIR / "storage"  # acceptance statistics: never the user's own cache
    await lsp_client.initialize_session(
        t.InitializeParams(
            capabilities=capabilities(),
            initialization_options={
                "ryzanstein": {**SETTINGS, "modelPath": str(model_path()), "storagePath": str(storage)}
            },
        )
    )
    for _ in range(200):
        status = await lsp_client.workspace_execute_command_async(
            t.ExecuteCommandParams(command="ryzanstein.sidecar.status")
        )
        if status["state"] == "ready":
            break
        await asyncio.sleep(0.05)
    yield
    await lsp_client.shutdown_session()


def open_doc(
    client: LanguageClient, text: str, uri: str = "file:///work/demo.py", version: int = 1, language: str = "python"
) -> str:
    client.text_document_did_open(
        t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)
        )
    )
    return uri


def request(uri: str, line: int, character: int, invoked: bool = False) -> t.InlineCompletionParams:
    kind = t.InlineCompletionTriggerKind.Invoked if invoked else t.InlineCompletionTriggerKind.Automatic
    return t.InlineCompletionParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        position=t.Position(line=line, character=character),
        context=t.InlineCompletionContext(trigger_kind=kind),
    )


def engine_answer(text: str, offset: int) -> str:
    """The same pipeline in this process: what the server must have answered."""
    host = ModelHost()
    host.load(str(model_path()))
    pipeline = CompletionPipeline(host, ServerSettings().updated(SETTINGS).completion)
    c = pipeline.complete("file:///work/demo.py", text, offset, lambda: False)
    assert c is not None
    return c.text


@pytest.mark.asyncio
async def test_suggestion_comes_from_the_model(client: LanguageClient) -> None:
    text = "def add(a, b):\n    return a + \n"
    uri = open_doc(client, text)
    result = await client.text_document_inline_completion_async(request(uri, 1, 15))
    want = engine_answer(text, text.index("a + ") + 4)
    got = result.items[0].insert_text if result and result.items else ""
    assert got == want
    assert "\n" not in got  # a mid-line cursor gets one line


@pytest.mark.asyncio
async def test_utf16_positions(client: LanguageClient) -> None:
    text = "s = '🎉ünï'; t = \n"
    uri = open_doc(client, text)
    # '🎉' is two UTF-16 code units: the cursor after "t = " is at UTF-16 column len + 1
    col = len("s = '🎉ünï'; t = ") + 1
    result = await client.text_document_inline_completion_async(request(uri, 0, col))
    got = result.items[0].insert_text if result and result.items else ""
    assert got == engine_answer(text, text.index("t = ") + 4)


@pytest.mark.asyncio
@pytest.mark.parametrize("where", [(1, 2**31 - 1), (2**31 - 1, 0), (2**31 - 1, 2**31 - 1)])
async def test_a_position_past_the_end_is_the_end_and_is_not_echoed(
    client: LanguageClient, where: tuple[int, int]
) -> None:
    """LSP: a character past a line's end means that end, a line past the last the document's end. The suggestion
    is the one at the end, and its range is where it really goes."""
    text = "def add(a, b):\n    return a + "
    uri = open_doc(client, text, uri=f"file:///work/past-{where[0]}-{where[1]}.py")
    at_end = await client.text_document_inline_completion_async(request(uri, 1, 15, invoked=True))
    past = await client.text_document_inline_completion_async(request(uri, *where, invoked=True))
    assert at_end is not None and at_end.items, "the model suggests something at the end"
    assert past is not None and [i.insert_text for i in past.items] == [i.insert_text for i in at_end.items]
    end = t.Position(line=1, character=15)
    assert past.items[0].range == t.Range(start=end, end=end)


async def status(client: LanguageClient) -> dict[str, Any]:
    return await client.workspace_execute_command_async(t.ExecuteCommandParams(command="ryzanstein.sidecar.status"))


@pytest.mark.asyncio
async def test_cancel_answers_32800_and_stops_generation(client: LanguageClient) -> None:
    uri = open_doc(client, "def f():\n    \n")
    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"ryzanstein": {"maxTokens": 100_000, "maxLines": 100_000}})
    )
    before = await status(client)
    # pytest-lsp's send_request_async is a coroutine: schedule it so the request goes out now
    fut = asyncio.ensure_future(
        client.protocol.send_request_async(t.TEXT_DOCUMENT_INLINE_COMPLETION, request(uri, 1, 4), msg_id="long-1")
    )
    for _ in range(200):  # wait until generation is under way (about two thousand tokens to go)
        if (await status(client))["computed_completions"] > before["computed_completions"]:
            break
        await asyncio.sleep(0.02)
    client.protocol.notify(t.CANCEL_REQUEST, t.CancelParams(id="long-1"))
    with pytest.raises(JsonRpcException) as answer:
        await fut
    assert answer.value.code == -32800  # the error code as the server sent it: RequestCancelled
    for _ in range(100):
        after = await status(client)
        if after["cancelled_completions"] > before["cancelled_completions"]:
            break
        await asyncio.sleep(0.05)
    assert after["cancelled_completions"] == before["cancelled_completions"] + 1


@pytest.mark.asyncio
async def test_burst_computes_only_the_last(client: LanguageClient) -> None:
    text = "import os\n\nfor name in os.listdir('.'):\n    print(\n"
    uri = open_doc(client, text)
    before = await client.workspace_execute_command_async(t.ExecuteCommandParams(command="ryzanstein.sidecar.status"))
    futures = [
        asyncio.ensure_future(
            client.protocol.send_request_async(
                t.TEXT_DOCUMENT_INLINE_COMPLETION, request(uri, 3, 10), msg_id=f"burst-{i}"
            )
        )
        for i in range(200)
    ]
    await asyncio.sleep(0)  # let them all go out
    for i in range(0, 199, 3):  # the client gives up on a third of them
        client.protocol.notify(t.CANCEL_REQUEST, t.CancelParams(id=f"burst-{i}"))
    results = await asyncio.gather(*futures, return_exceptions=True)
    after = await client.workspace_execute_command_async(t.ExecuteCommandParams(command="ryzanstein.sidecar.status"))
    assert not isinstance(results[-1], Exception) and results[-1].items
    last = results[-1].items[0].insert_text
    # Superseded requests answer empty, or instantly from the suggestion cache: never a different suggestion.
    assert all(r.items[0].insert_text == last for r in results[:-1] if not isinstance(r, Exception) and r.items)
    # Superseded generations stop within a token: only the last request's generation runs to the end.
    assert after["finished_completions"] - before["finished_completions"] == 1
    runs = after["computed_completions"] - before["computed_completions"]
    assert after["cancelled_completions"] - before["cancelled_completions"] == runs - 1
    assert after["rss_bytes"] - before["rss_bytes"] < 64 * 2**20


@pytest.mark.asyncio
async def test_malformed_params_get_an_error_and_server_keeps_serving(tmp_path: Path) -> None:
    # Raw JSON-RPC over the server's stdin, past any client's own parameter checks.
    async with StdioServer.started([sys.executable, "-m", "pyserver"]) as rpc:
        await rpc.request(
            "init",
            "initialize",
            {
                "processId": None,
                "rootUri": None,
                "capabilities": {},
                "initializationOptions": {
                    "ryzanstein": {**SETTINGS, "modelPath": str(model_path()), "storagePath": str(tmp_path)}
                },
            },
        )
        await rpc.notify("initialized", {})
        bad = await rpc.request("bad-1", t.TEXT_DOCUMENT_INLINE_COMPLETION, {"textDocument": 42, "position": "here"})
        assert bad["error"]["code"] == -32602 and "result" not in bad  # InvalidParams
        uri = "file:///work/raw.py"
        await rpc.notify(
            t.TEXT_DOCUMENT_DID_OPEN,
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "x = \n"}},
        )
        good = await rpc.request(
            "good-1",
            t.TEXT_DOCUMENT_INLINE_COMPLETION,
            {
                "textDocument": {"uri": uri},
                "position": {"line": 0, "character": 4},
                "context": {"triggerKind": t.InlineCompletionTriggerKind.Invoked.value},
            },
        )
        assert "error" not in good and isinstance(good["result"]["items"], list)


@pytest.mark.asyncio
async def test_malformed_command_argument_gets_a_clear_error(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException) as answer:
        await client.workspace_execute_command_async(
            t.ExecuteCommandParams(command="ryzanstein.sidecar.docstring", arguments=["not a dict"])
        )
    assert answer.value.code == -32602  # InvalidParams, saying what was expected, with no traceback
    expected = 'expected one argument {"uri": ..., "position": ..., "mode": ..., "force": ..., "preview": ...}'
    assert expected in answer.value.message
    assert not answer.value.data
    with pytest.raises(JsonRpcException, match="'position' needs a position"):
        await client.workspace_execute_command_async(
            t.ExecuteCommandParams(
                command="ryzanstein.sidecar.docstring",
                arguments=[{"uri": "file:///work/demo.py", "position": {"line": "one", "character": 0}}],
            )
        )
    uri = open_doc(client, "x = \n")
    result = await client.text_document_inline_completion_async(request(uri, 0, 4))
    assert result is not None


@pytest.mark.asyncio
async def test_stale_edit_is_refused(client: LanguageClient) -> None:
    text = "def area(w, h):\n    return w * h\n"
    uri = open_doc(client, text)
    cmd = asyncio.ensure_future(
        client.workspace_execute_command_async(
            t.ExecuteCommandParams(
                command="ryzanstein.sidecar.docstring",
                arguments=[{"uri": uri, "position": {"line": 0, "character": 4}}],
            )
        )
    )
    await asyncio.sleep(0)  # the command goes out first; the edit below lands while it computes
    client.text_document_did_change(
        t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[t.TextDocumentContentChangeWholeDocument(text="# edited\n" + text)],
        )
    )
    result = await cmd
    assert result["applied"] is False and "changed" in result["reason"]
    assert client.applied_versions == []  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_docstring_edit_carries_the_version(client: LanguageClient) -> None:
    text = "def area(w, h):\n    return w * h\n"
    uri = open_doc(client, text, version=7)
    result = await client.workspace_execute_command_async(
        t.ExecuteCommandParams(
            command="ryzanstein.sidecar.docstring", arguments=[{"uri": uri, "position": {"line": 1, "character": 4}}]
        )
    )
    if result.get("applied") is False:  # the random model's text failed verification: nothing may be sent
        assert any(p in result["reason"] for p in ("the model", "does not parse", "signature"))
        assert client.applied_versions == []  # type: ignore[attr-defined]
        return
    (params,) = client.applied_versions  # type: ignore[attr-defined]
    (change,) = params.edit.document_changes
    assert change.text_document.version == 7
    (edit,) = change.edits
    assert edit.range.start.line == 1 and edit.new_text.startswith('    """')


@pytest.mark.asyncio
async def test_long_refactor_does_not_block_completions(client: LanguageClient) -> None:
    text = "def area(w, h):\n    return w * h\n\n\nresult = area\n"  # must parse: the refactor reads the AST
    uri = open_doc(client, text)
    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"ryzanstein": {"refactorMaxTokens": 1500}})
    )
    refactor = asyncio.ensure_future(
        client.workspace_execute_command_async(
            t.ExecuteCommandParams(
                command="ryzanstein.sidecar.writeTests",
                arguments=[{"uri": uri, "position": {"line": 1, "character": 4}}],
            )
        )
    )
    for _ in range(200):  # wait until the refactor is generating
        if (await status(client))["state"] == "busy":
            break
        await asyncio.sleep(0.01)
    result = await client.text_document_inline_completion_async(request(uri, 4, 13))
    assert result is not None and result.items  # answered while the refactor still runs
    assert not refactor.done()
    await refactor


async def suggestion(client: LanguageClient, uri: str, line: int, col: int, invoked: bool = False) -> str:
    result = await client.text_document_inline_completion_async(request(uri, line, col, invoked))
    return result.items[0].insert_text if result and result.items else ""


def configure(client: LanguageClient, **values: Any) -> None:
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"ryzanstein": values}))


@pytest.mark.asyncio
async def test_languages_switched_off_get_nothing(client: LanguageClient) -> None:
    text = "x = 1\ny = \n"
    py = open_doc(client, text, "file:///work/a.py")
    md = open_doc(client, text, "file:///work/a.md", language="markdown")
    assert await suggestion(client, py, 1, 4)
    assert await suggestion(client, md, 1, 4) == ""  # off by default
    configure(client, languages={"*": False, "markdown": True})
    assert await suggestion(client, md, 1, 4)
    assert await suggestion(client, py, 1, 4) == ""


@pytest.mark.asyncio
async def test_model_languages_limit_suggestions(client: LanguageClient, tmp_path: Path) -> None:
    m = random_model(np.random.default_rng(42), "bitnet", "TQ2_0", n_layer=2, vocab=320)
    m.token_embd[-5:] = 0.0
    path = write_gguf(
        m, MODEL_DIR / "m-python-only.gguf", context_length=8192, strings={"ryzanstein.languages": ["python"]}
    )
    configure(client, modelPath=str(path))
    for _ in range(200):
        s = await status(client)
        if s["state"] == "ready" and s["model"] == path.name:
            break
        await asyncio.sleep(0.05)
    text = "x = 1\ny = \n"
    assert await suggestion(client, open_doc(client, text, "file:///work/b.py"), 1, 4)
    js = open_doc(client, text, "file:///work/b.js", language="javascript")
    assert await suggestion(client, js, 1, 4) == ""  # the model was not trained on JavaScript


@pytest.mark.asyncio
async def test_manual_trigger_answers_only_when_asked(client: LanguageClient) -> None:
    uri = open_doc(client, "x = 1\ny = \n")
    configure(client, trigger="manual")
    assert await suggestion(client, uri, 1, 4) == ""
    assert await suggestion(client, uri, 1, 4, invoked=True)


@pytest.mark.asyncio
async def test_min_confidence_holds_suggestions_back(client: LanguageClient) -> None:
    uri = open_doc(client, "x = 1\ny = \n")
    assert await suggestion(client, uri, 1, 4)
    configure(client, minConfidence=1.0)  # no model is ever that sure of a random line
    assert await suggestion(client, open_doc(client, "x = 2\ny = \n", "file:///work/c.py"), 1, 4) == ""


@pytest.mark.asyncio
async def test_acceptance_is_counted(client: LanguageClient) -> None:
    uri = open_doc(client, "x = 1\ny = \n", "file:///work/d.py")
    result = await client.text_document_inline_completion_async(request(uri, 1, 4))
    item = result.items[0]
    assert item.command is not None and item.command.command == "ryzanstein.acceptedSuggestion"
    assert list(item.command.arguments or []) == [{"uri": uri}]
    before = (await status(client))["acceptance"]
    counted = await client.workspace_execute_command_async(
        t.ExecuteCommandParams(command="ryzanstein.sidecar.acceptance", arguments=[{"uri": uri, "event": "accepted"}])
    )
    assert counted == {"counted": True}
    partial = await client.workspace_execute_command_async(
        t.ExecuteCommandParams(
            command="ryzanstein.sidecar.acceptance", arguments=[{"uri": uri, "event": "accepted_word"}]
        )
    )
    assert partial == {"counted": True}
    nowhere = await client.workspace_execute_command_async(
        t.ExecuteCommandParams(
            command="ryzanstein.sidecar.acceptance", arguments=[{"uri": "file:///never/shown.py", "event": "accepted"}]
        )
    )
    assert nowhere == {"counted": False}
    after = (await status(client))["acceptance"]
    assert after["accepted"] == before["accepted"] + 1
    assert after["accepted_word"] == before["accepted_word"] + 1
    row = next(r for r in after["by_model_language"] if r["language"] == "python")
    assert row["model"] == model_path().name and row["shown"] >= 1


@pytest.mark.asyncio
async def test_bad_settings_are_reported_to_the_user(client: LanguageClient) -> None:
    configure(client, maxTokens=-3, languages=["python"])
    for _ in range(100):
        warnings = [m.message for m in client.messages if m.type == t.MessageType.Warning]
        if warnings:
            break
        await asyncio.sleep(0.02)
    assert warnings and "maxTokens: needs a number >= 0" in warnings[-1]
    assert "languages: needs an object" in warnings[-1]
    assert (await status(client))["state"] == "ready"  # and it goes on serving with the previous values
