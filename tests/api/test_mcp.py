"""The MCP server, driven by the MCP SDK's own client over stdio against a real indexed folder (a subprocess of
`python -m pyserver mcp`): tools listed, search, symbols, completion, explanation, resources, and a path that leaves
the workspace refused."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

FILES = {
    "geometry/shapes.py": (
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n\n\n"
        "def ring_area(outer, inner):\n    return circle_area(outer) - circle_area(inner)\n"
    ),
    "app.py": "from geometry.shapes import ring_area\n\n\nprint(ring_area(3.0, 1.0))\n",
}


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def _items(result: Any) -> list[Any]:
    """A tool's list result: one JSON text content item per element."""
    return [json.loads(c.text) for c in result.content]


async def _session_run(root: Path, cache: Path) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "pyserver", "mcp", "--root", str(root)],
        env={"XDG_CACHE_HOME": str(cache), "RYZANSTEIN_LAYOUT": "decode"},
    )
    out: dict[str, Any] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
        out["search"] = _items(await session.call_tool("search_code", {"query": "area of a ring", "k": 3}))
        out["symbol"] = json.loads(_text(await session.call_tool("find_symbol", {"name": "circle_area"})))
        out["complete"] = _text(await session.call_tool("complete", {"path": "app.py", "line": 4, "character": 0}))
        out["explain"] = _text(
            await session.call_tool("explain", {"path": "geometry/shapes.py", "start_line": 4, "end_line": 5})
        )
        escape = await session.call_tool("complete", {"path": "../outside.py", "line": 0, "character": 0})
        out["escape"] = (escape.is_error, _text(escape))
        files = await session.read_resource("ryzanstein://files")
        out["files"] = json.loads("".join(getattr(c, "text", "") for c in files.contents))
        shapes = await session.read_resource("ryzanstein://file/app.py")
        out["file"] = "".join(getattr(c, "text", "") for c in shapes.contents)
    return out


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ws")
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root.parent / "outside.py").write_text("secret = 1\n")
    return asyncio.run(_session_run(root, tmp_path_factory.mktemp("cache")))


def test_tools_and_search(result: dict[str, Any]) -> None:
    assert result["tools"] == ["complete", "explain", "find_symbol", "search_code"]
    hits = result["search"]
    assert 1 <= len(hits) <= 3
    assert any(h["path"] == "geometry/shapes.py" and "def ring_area" in h["snippet"] for h in hits)


def test_symbols_have_definitions_and_references(result: dict[str, Any]) -> None:
    defs = result["symbol"]["definitions"]
    refs = result["symbol"]["references"]
    assert defs == [{"path": "geometry/shapes.py", "line": 4}]
    assert {"path": "geometry/shapes.py", "line": 9} in refs


def test_model_tools_answer(result: dict[str, Any]) -> None:
    assert isinstance(result["complete"], str)
    assert result["explain"].strip()


def test_resources_and_the_workspace_boundary(result: dict[str, Any]) -> None:
    assert result["files"] == ["app.py", "geometry/shapes.py"]
    assert result["file"] == FILES["app.py"]
    is_error, text = result["escape"]
    assert is_error and "not a file in the workspace" in text
