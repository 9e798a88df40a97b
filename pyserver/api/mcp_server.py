"""`python -m pyserver mcp --root FOLDER`: a Model Context Protocol server on stdio (the official `mcp` SDK), so
agent tools can use the workspace index and the local model.

Tools (a bad argument is a tool error saying what is wrong): `search_code` (the index's fused lexical + dense
search), `find_symbol` (definitions and references from the index's symbol table), `complete` (fill-in-the-middle at
a file position, through the LSP server's completion pipeline) and `explain` (a range of lines). Resources: the
list of indexed files, and each file's text. Paths are relative to the root; anything that leaves it is refused.
Needs the `mcp` extra (`pip install 'ryzanstein[mcp]'`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.index.workspace import WorkspaceIndex
from pyserver.paths import cache_dir
from pyserver.refactor.explain import explain as explain_code
from pyserver.refactor.writer import LocalWriter
from pyserver.server.settings import ServerSettings

SNIPPET_LINES = 12
MAX_FILE_CHARS = 1_000_000


class Workspace:
    """The folder the tools work on: its index (scanned when the server starts) and the model (loaded lazily)."""

    def __init__(self, root: Path, index_path: Path | None = None) -> None:
        self.root = root.resolve()
        db = index_path or cache_dir() / "mcp" / (self.root.as_posix().strip("/").replace("/", "_") + ".sqlite")
        db.parent.mkdir(parents=True, exist_ok=True)
        self.index = WorkspaceIndex(self.root, db)
        self.index.scan()
        self.host = ModelHost()
        self.pipeline = CompletionPipeline(self.host, ServerSettings().completion)

    def model(self) -> ModelHost:
        if self.host.model is None:
            self.host.load()
            if self.host.model is None:
                raise ToolError(f"the model did not load: {self.host.error}")
        return self.host

    def file(self, path: str) -> Path:
        p = (self.root / path).resolve()
        if not p.is_relative_to(self.root) or not p.is_file():
            raise ToolError(f"{path}: not a file in the workspace")
        return p

    def text(self, path: str) -> str:
        p = self.file(path)
        if p.stat().st_size > MAX_FILE_CHARS:
            raise ToolError(f"{path}: too large")
        return p.read_text(encoding="utf-8", errors="replace")


def build(ws: Workspace) -> MCPServer:
    server = MCPServer("ryzanstein", instructions="Search, complete and explain code in the workspace, locally.")

    @server.tool()
    def search_code(query: str, k: int = 8) -> list[dict[str, Any]]:
        """Search the workspace's code (identifiers, text and meaning): the best chunks with their path and lines."""
        hits = ws.index.search(query, max(1, min(int(k), 50)))
        return [
            {
                "path": h.chunk.path,
                "start_line": h.chunk.start_line,
                "end_line": h.chunk.end_line,
                "symbol": h.chunk.symbol,
                "score": round(h.score, 4),
                "why": h.why,
                "snippet": "\n".join(h.chunk.text.split("\n")[:SNIPPET_LINES]),
            }
            for h in hits
        ]

    @server.tool()
    def find_symbol(name: str) -> dict[str, list[dict[str, Any]]]:
        """Where a name is defined and where it is used (calls and other references), from the workspace index."""
        rows = ws.index.reader().conn.execute(
            "SELECT f.path, s.kind, s.line FROM symbols s JOIN files f ON f.id = s.file_id WHERE s.name = ? "
            "ORDER BY f.path, s.line LIMIT 500",
            (name,),
        )
        out: dict[str, list[dict[str, Any]]] = {"definitions": [], "references": []}
        for path, kind, line in rows:
            out["definitions" if kind == "def" else "references"].append({"path": path, "line": int(line)})
        return out

    @server.tool()
    def complete(path: str, line: int, character: int) -> str:
        """The code the local model suggests at a position of a file (0-based line and character)."""
        text = ws.text(path)
        lines = text.split("\n")
        if not 0 <= line < len(lines) or not 0 <= character <= len(lines[line]):
            raise ToolError(f"{path}: no position {line}:{character}")
        offset = sum(len(x) + 1 for x in lines[:line]) + character
        ws.model()
        c = ws.pipeline.complete(ws.file(path).as_uri(), text, offset, lambda: False)
        return c.candidate if c is not None else ""

    @server.tool()
    def explain(path: str, start_line: int, end_line: int) -> str:
        """What a range of lines of a file does (1-based, inclusive), in the local model's words."""
        lines = ws.text(path).split("\n")
        if not 1 <= start_line <= end_line <= len(lines):
            raise ToolError(f"{path}: no lines {start_line}-{end_line}")
        host = ws.model()
        code = "\n".join(lines[start_line - 1 : end_line])
        out = explain_code(LocalWriter(host.refactor_session()), code, 96, lambda: False)
        return out or ""

    @server.resource("ryzanstein://files", mime_type="application/json")
    def files() -> list[str]:
        """The workspace's indexed files (paths relative to its root)."""
        rows = ws.index.reader().conn.execute("SELECT path FROM files ORDER BY path")
        return [str(r[0]) for r in rows]

    @server.resource("ryzanstein://file/{path}", mime_type="text/plain")
    def file(path: str) -> str:
        """An indexed file's text."""
        return ws.text(path)

    return server


def serve(root: Path) -> int:
    build(Workspace(root)).run("stdio")
    return 0
