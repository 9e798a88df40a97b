"""Where the sidecar keeps what it computes on this machine (index files, hardware profile, calibrations,
statistics): `$XDG_CACHE_HOME/ryzanstein`, else `~/.cache/ryzanstein`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ryzanstein"


def write_text_atomic(path: Path, text: str) -> None:
    """Writes `text` to a temporary file beside `path`, then renames it over `path`: a reader sees the old file or
    the new one, never half of one. Raises OSError as open() does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
