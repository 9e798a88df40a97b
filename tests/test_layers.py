"""Layers point one way (README, "Layout"; DESIGN.md): server -> completion / refactor / index / tiers -> engine ->
native, with the command line and the benchmarks as tools over all of them and a few leaf modules (paths, the
shipped model's location, report rendering) under everything. Every import of every module, top-level or inside a
function, is checked against that order."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pyserver"
RANK = {"base": 0, "native": 1, "engine": 2, "middle": 3, "server": 4, "tools": 5}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "pyserver" or len(parts) == 1:
        return "base"
    head = parts[1]
    if head in ("cli", "__main__", "bench"):
        return "tools"
    if head in ("server", "api"):  # the front ends: the LSP sidecar and the OpenAI-compatible API
        return "server"
    if head in ("completion", "refactor", "index", "tiers", "inspect"):
        return "middle"
    if head == "engine":
        return "engine"
    if head in ("native", "_native"):
        return "native"
    if head in ("paths", "models", "render", "__version__"):
        return "base"
    raise AssertionError(f"{module}: no layer assigned; add it to tests/test_layers.py and the README's layer list")


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("pyserver")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pyserver"):
            mod = str(node.module)
            found += [(node.lineno, f"{mod}.{a.name}" if mod == "pyserver" else mod) for a in node.names]
    return found


def module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def test_every_import_points_down_or_sideways() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_of(path)
        for line, target in imports(path):
            if RANK[layer(target)] > RANK[layer(me)]:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {me} ({layer(me)}) imports {target} ({layer(target)})"
                )
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pyserver.server.settings import ServerSettings\n")
    assert imports(bad) == [(2, "pyserver.server.settings")]
    assert RANK[layer("pyserver.server.settings")] > RANK[layer("pyserver.completion.pipeline")]
