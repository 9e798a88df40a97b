"""A sidecar whose model cannot load answers empty at once, says why once, and keeps serving."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.server.test_lsp import open_doc, request
from tests.support.lsp import capabilities


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"]))
async def client(lsp_client: LanguageClient) -> Any:
    await lsp_client.initialize_session(
        t.InitializeParams(
            capabilities=capabilities(), initialization_options={"ryzanstein": {"modelPath": "/nonexistent/model.gguf"}}
        )
    )
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_missing_model(client: LanguageClient) -> None:
    for _ in range(200):
        status = await client.workspace_execute_command_async(
            t.ExecuteCommandParams(command="ryzanstein.sidecar.status")
        )
        if status["state"] == "error":
            break
        await asyncio.sleep(0.02)
    assert status["state"] == "error" and "/nonexistent/model.gguf" in status["error"]
    uri = open_doc(client, "x = \n")
    for _ in range(3):
        result = await client.text_document_inline_completion_async(request(uri, 0, 4))
        assert result is not None and not result.items
    errors = [m for m in client.messages if m.type == t.MessageType.Error]
    assert len(errors) == 1 and "could not be loaded" in errors[0].message
