"""Where the shipped model lives."""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_MODEL_NAME = "ryzanstein-code.gguf"


def shipped_model_dirs() -> list[Path]:
    """RYZANSTEIN_MODEL_DIR (the VSIX carries the model once, beside its wheels, and the extension names that
    folder), models/ of a source checkout, then the copy installed inside the package (wheels)."""
    here = Path(__file__).resolve().parent
    extra = os.environ.get("RYZANSTEIN_MODEL_DIR")
    return ([Path(extra)] if extra else []) + [here.parent / "models", here / "model_files"]


def default_model_path() -> Path | None:
    for d in shipped_model_dirs():
        p = d / SHIPPED_MODEL_NAME
        if p.is_file():
            return p
    return None
