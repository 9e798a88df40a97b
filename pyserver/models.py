"""Where the shipped model lives."""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODEL_NAME = "ryzanstein-code.gguf"


def shipped_model_dirs() -> list[Path]:
    """models/ of a source checkout, then the copy installed inside the package (wheels, the VSIX)."""
    here = Path(__file__).resolve().parent
    return [here.parent / "models", here / "model_files"]


def default_model_path() -> Path | None:
    for d in shipped_model_dirs():
        p = d / SHIPPED_MODEL_NAME
        if p.is_file():
            return p
    return None
