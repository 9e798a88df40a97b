"""The training corpus: the Python standard library of the running interpreter, so anyone can rebuild it anywhere.

Files are taken in sorted order of their path relative to the stdlib root; about 5% of them (by a stable hash of
that path) are held out for evaluation and never trained on.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

HOLDOUT_PERCENT = 5
MAX_FILE_BYTES = 1 << 20  # a few generated tables are huge and teach little


@dataclass(frozen=True)
class SourceFile:
    rel: str
    text: str


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_holdout(rel: str) -> bool:
    return int(hashlib.sha1(rel.encode()).hexdigest(), 16) % 100 < HOLDOUT_PERCENT


def source_files(split: str) -> list[SourceFile]:
    """split: "train" or "eval"."""
    if split not in ("train", "eval"):
        raise ValueError(split)
    root = stdlib_root()
    out = []
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in path.parts or path.stat().st_size > MAX_FILE_BYTES:
            continue
        if is_holdout(rel) != (split == "eval"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append(SourceFile(rel, text))
    return out
