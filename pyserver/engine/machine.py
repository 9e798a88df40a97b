"""What a measurement on this machine is valid for: the CPU model and this build of the engine."""

from __future__ import annotations

import functools
import hashlib
import platform


@functools.lru_cache(maxsize=1)
def engine_version() -> str:
    """The package version and a digest of the native module: a rebuilt engine is a new engine."""
    from importlib import metadata

    try:
        version = metadata.version("ryzanstein")
    except metadata.PackageNotFoundError:
        version = "0"
    try:
        from importlib.util import find_spec

        spec = find_spec("pyserver._native")
        if spec is None or spec.origin is None:
            return version
        h = hashlib.sha256()
        with open(spec.origin, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        return f"{version}+{h.hexdigest()[:12]}"
    except (ImportError, OSError, ValueError):
        return version


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
