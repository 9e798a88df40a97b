"""Where the sidecar keeps what it computes on this machine (index files, hardware profile, calibrations,
statistics): `$XDG_CACHE_HOME/ryzanstein`, else `~/.cache/ryzanstein`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ryzanstein"
