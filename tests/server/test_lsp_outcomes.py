"""Every completion request says why it ended as it did: a `ryzanstein/completion` notification (before the
answer), the status command's last outcome and counts by reason, one log line per request (no document text unless
logPrompts is on), and the counts kept for the doctor."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from pyserver.server.doctor import doctor
from tests.server.test_lsp import model_path, open_doc, request
from tests.support.lsp import capabilities

STORAGE = Path(__file__).resolve().parent / "_model" / "storage-outcomes"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"]))
async def client(lsp_client: LanguageClient) -> Any:
    lsp_client.outcomes = []  # type: ignore[attr-defined]

    @lsp_client.feature("ryzanstein/completion")
    def outcome(params: Any) -> None:
        lsp_client.outcomes.append(params)  # type: ignore[attr-defined]

    await lsp_client.initialize_session(
        t.InitializeParams(
            capabilities=capabilities(),
            initialization_options={
                "ryzanstein": {
                    "maxTokens": 8,
                    "timeBudgetMs": 60_000,
                    "modelPath": str(model_path()),
                    "storagePath": str(STORAGE),
                    "minConfidence": 1.0,
                }
            },
        )
    )
    for _ in range(200):
        s = await lsp_client.workspace_execute_command_async(
            t.ExecuteCommandParams(command="ryzanstein.sidecar.status")
        )
        if s["state"] == "ready":
            break
        await asyncio.sleep(0.05)
    yield
    await lsp_client.shutdown_session()


def field(p: Any, name: str) -> Any:
    return p[name] if isinstance(p, dict) else getattr(p, name)


@pytest.mark.asyncio
async def test_every_answer_says_why(client: LanguageClient) -> None:
    text = "def add(a, b):\n    return a + \n"
    uri = open_doc(client, text, uri="file:///work/why.py")
    got = await client.text_document_inline_completion_async(request(uri, 1, 15, invoked=True))
    assert not (got and got.items)
    o = client.outcomes[-1]  # type: ignore[attr-defined]
    assert field(o, "uri") == uri and field(o, "reason") == "gated" and field(o, "invoked") is True
    assert "confidence" in field(o, "message")

    md = open_doc(client, "# Notes\n\nSome ", uri="file:///work/notes.md", language="markdown")
    await client.text_document_inline_completion_async(request(md, 2, 5))
    assert field(client.outcomes[-1], "reason") == "language_off"  # type: ignore[attr-defined]

    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"ryzanstein": {"minConfidence": 0, "enable": False}})
    )
    await client.text_document_inline_completion_async(request(uri, 1, 15))
    assert field(client.outcomes[-1], "reason") == "disabled"  # type: ignore[attr-defined]

    status = await client.workspace_execute_command_async(t.ExecuteCommandParams(command="ryzanstein.sidecar.status"))
    assert status["last_outcome"]["reason"] == "disabled"
    assert status["outcomes"]["gated"] >= 1 and status["outcomes"]["language_off"] >= 1
    # the message never holds the document's text
    assert all("return a" not in field(o, "message") for o in client.outcomes)  # type: ignore[attr-defined]


def test_the_doctor_counts_by_reason(tmp_path: Path) -> None:
    from pyserver.completion.outcome import Outcome
    from pyserver.server.outcomes import CompletionOutcomes

    kept = CompletionOutcomes(tmp_path)
    for reason in ("gated", "gated", "shown", "superseded"):
        kept.count(Outcome.of(reason, confidence=0.1, threshold=0.3))
    kept.save()
    report = doctor(storage=str(tmp_path))
    assert report["completions"]["by_reason"] == {"gated": 2, "shown": 1, "superseded": 1}
    assert report["completions"]["last"]["reason"] == "superseded"
