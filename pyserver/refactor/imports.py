"""How a Python file is imported: its dotted import path (a package's `__init__.py` is the package itself) and the
folder that path starts from (the first folder up without an `__init__.py`: the project root, or `src/` in a src
layout), and where Write Tests puts its test file (beside the module; beside the package for an `__init__.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModuleImport:
    dotted: str  # e.g. "schedule" for schedule/__init__.py, "diskcache.core" for diskcache/core.py
    root: Path  # the folder on sys.path from which `dotted` imports
    test_file: Path  # test_<last part>.py

    @property
    def name(self) -> str:
        return self.dotted.rsplit(".", 1)[-1]


def module_import(path: Path) -> ModuleImport:
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    dotted = ".".join(parts) or path.stem
    name = dotted.rsplit(".", 1)[-1]
    where = path.parent.parent if path.stem == "__init__" else path.parent
    return ModuleImport(dotted, folder, where / f"test_{name}.py")
