"""The model manager through the sidecar, end to end: the editor asks for a registry model, the sidecar downloads it
from a hub (a local one here, through HF_ENDPOINT: the same client and cache as the real hub), reports progress,
runs discovery again, and serves the model once its tier is chosen, with no restart."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from pyserver.tiers.registry import registry_path
from tests.support.builders import random_model, write_gguf
from tests.support.fake_hub import FakeHub
from tests.support.lsp import capabilities
from tests.support.registry import tiny_entry, write_registry

REPO, FILE = "tiny-org/tiny-ternary-gguf", "tiny-i2.gguf"
HOME = Path(tempfile.mkdtemp(prefix="ryz-dl-"))


def _hub() -> FakeHub:
    model = HOME / "m.gguf"
    write_gguf(
        random_model(np.random.default_rng(0), "bitnet", "TQ2_0", n_embd=256, n_ff=768, n_layer=2, vocab=320), model
    )
    hub = FakeHub()
    hub.add(REPO, {FILE: model.read_bytes(), "README.md": b"# tiny\n"})
    hub.start()
    # A registry with the shipped model and a small "3B" that lives on the hub above.
    real = json.loads(registry_path().read_text())
    tiny = tiny_entry(name="Tiny ternary", files=[FILE], repo=REPO)
    write_registry(HOME / "registry.json", {"shipped": real["tiers"]["shipped"], "3B": [tiny]})
    return hub


HUB = _hub()
ENV = dict(os.environ) | {
    "HOME": str(HOME / "home"),
    "XDG_CONFIG_HOME": str(HOME / "config"),
    "XDG_CACHE_HOME": str(HOME / "cache"),
    "HF_HOME": str(HOME / "hf"),
    "HF_ENDPOINT": HUB.url,
    "RYZANSTEIN_REGISTRY": str(HOME / "registry.json"),
}
for var in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE", "LLAMA_CACHE", "OLLAMA_MODELS"):
    ENV.pop(var, None)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"], server_env=ENV))
async def client(lsp_client: LanguageClient) -> Any:
    lsp_client.downloads = []  # type: ignore[attr-defined]

    @lsp_client.feature("ryzanstein/download")
    def on_download(params: Any) -> None:
        lsp_client.downloads.append(params)  # type: ignore[attr-defined]

    await lsp_client.initialize_session(
        t.InitializeParams(capabilities=capabilities(), initialization_options={"ryzanstein": {"maxTokens": 8}})
    )
    yield
    await lsp_client.shutdown_session()


async def command(client: LanguageClient, name: str, **arg: Any) -> Any:
    return await client.workspace_execute_command_async(t.ExecuteCommandParams(command=name, arguments=[arg]))


def field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


@pytest.mark.asyncio
async def test_download_then_serve_without_restart(client: LanguageClient) -> None:
    table = await command(client, "ryzanstein.sidecar.models")
    row = next(r for r in table["tiers"]["3B"] if r["id"] == "tiny-gguf")
    assert row["present"] is False and row["approx_download_bytes"] > 0
    started = await command(client, "ryzanstein.sidecar.download", id="tiny-gguf")
    assert started["state"] == "running"
    for _ in range(600):
        done = [d for d in client.downloads if field(d, "state") != "running"]  # type: ignore[attr-defined]
        if done:
            break
        await asyncio.sleep(0.05)
    assert done and field(done[-1], "state") == "done", client.downloads  # type: ignore[attr-defined]
    assert HUB.gets(FILE)  # it came from the hub, into the shared Hugging Face cache
    assert str(HOME / "hf") in field(done[-1], "path")
    table = await command(client, "ryzanstein.sidecar.models")
    assert next(r for r in table["tiers"]["3B"] if r["id"] == "tiny-gguf")["present"] is True
    # The editor then chooses the model's tier: the running sidecar loads and serves it.
    client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings={"ryzanstein": {"tier": "3B"}}))
    for _ in range(400):
        status = await client.workspace_execute_command_async(
            t.ExecuteCommandParams(command="ryzanstein.sidecar.status")
        )
        if status["state"] == "ready" and status["model"] == FILE:
            break
        await asyncio.sleep(0.05)
    assert status["model"] == FILE, status
    uri = "file:///work/x.py"
    client.text_document_did_open(
        t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=uri, language_id="python", version=1, text="x = 1\ny = \n")
        )
    )
    result = await client.text_document_inline_completion_async(
        t.InlineCompletionParams(
            text_document=t.TextDocumentIdentifier(uri=uri),
            position=t.Position(line=1, character=4),
            context=t.InlineCompletionContext(trigger_kind=t.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert result is not None and result.items  # the new (random-weight) model answers
