"""A sidecar started with no model setting and no setup decision sets itself up: it profiles the machine, looks
for models, writes its decision, and serves by it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from pyserver.models import default_model_path
from tests.support.lsp import capabilities

HOME = Path(tempfile.mkdtemp(prefix="ryz-home-"))
ENV = dict(os.environ) | {
    "HOME": str(HOME / "home"),
    "XDG_CONFIG_HOME": str(HOME / "config"),
    "XDG_CACHE_HOME": str(HOME / "cache"),
    "HF_HOME": str(HOME / "hf"),
}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"], server_env=ENV))
async def client(lsp_client: LanguageClient) -> Any:
    await lsp_client.initialize_session(t.InitializeParams(capabilities=capabilities()))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_first_run_sets_itself_up(client: LanguageClient) -> None:
    config = HOME / "config" / "ryzanstein" / "config.json"
    for _ in range(600):  # (30 s: the setup measures the machine, slow on a loaded CI box)
        if config.exists():
            break
        await asyncio.sleep(0.05)
    decision = json.loads(config.read_text())["decision"]
    assert decision["use_now"] == "ryzanstein-code" and decision["reasons"]
    for _ in range(600):  # the plan follows the decision once it is written, and the model loads by it
        status = await client.workspace_execute_command_async(
            t.ExecuteCommandParams(command="ryzanstein.sidecar.status")
        )
        if status["serving_plan"][0].startswith("completions") and status["model"]:
            break
        await asyncio.sleep(0.05)
    assert status["serving_plan"] == [
        "completions: the shipped model",
        "refactors and uncertain completions: the same model",
    ]
    assert status["model"] == "ryzanstein-code.gguf"
    # New model folders: the setup runs again and finds what is in them (by header: the name says nothing).
    folder = HOME / "my-models"
    folder.mkdir()
    shutil.copy(default_model_path(), folder / "whatever.gguf")  # type: ignore[arg-type]
    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"ryzanstein": {"modelFolders": [str(folder)]}})
    )
    for _ in range(600):  # (30 s: the setup measures the machine, slow on a loaded CI box)
        paths = json.loads(config.read_text()).get("model_paths", {})
        if paths:
            break
        await asyncio.sleep(0.05)
    assert paths == {"ryzanstein-code": str(folder / "whatever.gguf")}
