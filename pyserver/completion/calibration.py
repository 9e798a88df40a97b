"""Where a model's confidence calibration lives: the user's cache (written by `bench completion --corpus real
--calibrate`, keyed by the model file's identity), else a `<model file>.calibration.json` beside it (how the shipped
model carries its own); a model with neither gets the uncalibrated gate."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from pyserver.completion.confidence import ConfidenceGate
from pyserver.paths import cache_dir

log = logging.getLogger("ryzanstein")


def _cache_dir() -> Path:
    return cache_dir() / "calibration"


def model_identity(path: Path) -> str:
    """Name, size and a hash of the file's first and last 64 KiB: the same file under another path is the same
    model; a re-exported one is not."""
    p = Path(path)
    if p.is_dir():
        parts = sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".json"))
        h = hashlib.sha256("|".join(f"{f.name}:{f.stat().st_size}" for f in parts).encode())
        return f"{p.name}-{h.hexdigest()[:16]}"
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as f:
        h.update(f.read(65536))
        f.seek(max(0, size - 65536))
        h.update(f.read(65536))
    return f"{p.stem}-{h.hexdigest()[:16]}"


def beside(path: Path) -> Path:
    return Path(str(path) + ".calibration.json") if not Path(path).is_dir() else Path(path) / "calibration.json"


def load_gate(path: Path | None) -> ConfidenceGate:
    if path is None:
        return ConfidenceGate()
    try:
        ident = model_identity(path)
    except OSError:
        return ConfidenceGate()
    for candidate in (_cache_dir() / f"{ident}.json", beside(path)):
        try:
            gate = ConfidenceGate.from_json(json.loads(candidate.read_text()))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            log.warning("ignoring the calibration in %s: %s", candidate, exc)
            continue
        if gate.model and gate.model != ident:
            log.warning("ignoring %s: it was made for %s, not %s", candidate, gate.model, ident)
            continue
        return gate
    return ConfidenceGate()


def save_gate(path: Path, gate: ConfidenceGate, target: Path | None = None) -> Path:
    """Writes the calibration to the user's cache (or `target`) and returns where."""
    out = target or _cache_dir() / f"{model_identity(path)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(gate.to_json(), indent=1) + "\n")
    os.replace(tmp, out)
    return out
