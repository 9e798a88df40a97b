"""The sidecar's inspectModel and inspectIndex over stdio with a real LSP client: the served model's report and the
workspace index's, as self-contained pages."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from pyserver.inspect.html import external_references
from tests.inspect.reference import figures
from tests.server.test_lsp import SETTINGS, model_path
from tests.support.lsp import command, start_in

WORKSPACE = Path(tempfile.mkdtemp(prefix="ryz-inspect-ws-"))
STORAGE = Path(tempfile.mkdtemp(prefix="ryz-inspect-storage-"))
for i in range(3):
    (WORKSPACE / f"m{i}.py").write_text(f"def function_{i}(x):\n    return x * {i}\n")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"]))
async def client(lsp_client: LanguageClient) -> Any:
    await start_in(lsp_client, WORKSPACE, {**SETTINGS, "modelPath": str(model_path()), "storagePath": str(STORAGE)})
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_inspect_model_and_index(client: LanguageClient) -> None:
    for _ in range(600):
        status = await command(client, "status")
        if status["state"] == "ready" and status["index"]["files"] >= 3:
            break
        await asyncio.sleep(0.05)
    result = await command(client, "inspectModel")
    html = result["html"]
    assert result["title"] == f"Inspect: {model_path().name}"
    assert result["summary"]["ternary_weights"] > 0
    figs = figures(html)
    assert "trits" in figs and "vocab_tree" in figs and html.count("<svg") == len(figs)
    assert external_references(html) == [] and "<script" not in html
    bad = await command(client, "inspectModel", {"path": str(WORKSPACE / "m0.py")})
    assert bad["html"] is None and "m0.py" in bad["reason"]

    result = await command(client, "inspectIndex")
    html = result["html"]
    assert result["pages"][0]["html"] == html and WORKSPACE.name in result["title"]
    assert "files" in figures(html) and external_references(html) == []
    assert "python" in html
