"""The sidecar indexes its workspace folder: status, search over LSP, live updates, and the index's definitions in
the completion prompt."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.server.test_lsp import SETTINGS, model_path
from tests.support.lsp import command, start_in

WORKSPACE = Path(tempfile.mkdtemp(prefix="ryz-ws-"))
STORAGE = Path(tempfile.mkdtemp(prefix="ryz-storage-"))
(WORKSPACE / "shapes.py").write_text(
    'def polygon_perimeter(sides, length):\n    """Perimeter of a regular polygon."""\n    return sides * length\n'
)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "pyserver"]))
async def client(lsp_client: LanguageClient) -> Any:
    await start_in(lsp_client, WORKSPACE, {**SETTINGS, "modelPath": str(model_path()), "storagePath": str(STORAGE)})
    yield
    await lsp_client.shutdown_session()


async def search_symbols(client: LanguageClient, query: str) -> list[str]:
    result = await command(client, "search", {"query": query, "k": 5})
    return [h["symbol"] for h in result["hits"]]


@pytest.mark.asyncio
async def test_index_search_and_live_updates(client: LanguageClient) -> None:
    for _ in range(300):
        index = (await command(client, "status"))["index"]
        if index["files"] >= 1 and index["state"] in ("embedding", "ready"):
            break
        await asyncio.sleep(0.05)
    assert index["folders"] == [str(WORKSPACE.resolve())] and index["files"] == 1
    assert list(STORAGE.glob("index/*.sqlite"))  # the index file lives in the storage folder given
    assert "polygon_perimeter" in await search_symbols(client, "polygon perimeter")
    (WORKSPACE / "colors.py").write_text("def blend_colors(a, b):\n    return (a + b) / 2\n")
    for _ in range(100):
        if "blend_colors" in await search_symbols(client, "blend colors"):
            break
        await asyncio.sleep(0.05)
    assert "blend_colors" in await search_symbols(client, "blend colors")
    result = await command(client, "reindex")
    assert result["indexed"] and result["files"] == 2
    with pytest.raises(Exception, match="query"):
        await command(client, "search", {"k": 3})
    # New exclude rules apply without restarting the sidecar: the excluded file leaves the index.
    client.workspace_did_change_configuration(
        t.DidChangeConfigurationParams(settings={"ryzanstein": {"indexExclude": ["colors.py"]}})
    )

    async def rescanned() -> bool:
        found = await search_symbols(client, "blend colors polygon perimeter")
        return "polygon_perimeter" in found and "blend_colors" not in found

    for _ in range(100):
        if await rescanned():
            break
        await asyncio.sleep(0.05)
    assert await rescanned()
