"""Completion spots for the walk-through (walkthrough.ts): SPOTS cursor positions per project, seeded, in the
project's own Python files (tests left out), half at line starts after the indentation and half mid-line after one
of `.(,=[:`, as `bench completion --corpus real` picks them; the rest of the line is what a suggestion should
restore. Prints JSON: [{project, file, line, column, kind, target}] (line and column 1-based).

    python spots.py PROJECT_DIR [PROJECT_DIR ...] > spots.json
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SPOTS = 12
PUNCTUATION = ".(,=[:"


def spots(project: Path, n: int, seed: int = 29) -> list[dict[str, object]]:
    rng = random.Random(seed)
    files = sorted(p for p in project.rglob("*.py") if "test" not in p.name and p.stat().st_size > 2000)
    picked: list[dict[str, object]] = []
    tries = 0
    while len(picked) < n and tries < 10_000:
        tries += 1
        f = rng.choice(files)
        lines = f.read_text(encoding="utf-8").split("\n")
        i = rng.randrange(len(lines))
        text = lines[i]
        body = text.strip()
        if len(body) < 12 or body.startswith(("#", '"', "'", "@")) or '"""' in text:
            continue
        kind = "line_start" if len(picked) % 2 == 0 else "mid_line"
        if kind == "line_start":
            col = len(text) - len(text.lstrip())
        else:
            cuts = [j + 1 for j, ch in enumerate(text) if ch in PUNCTUATION and j + 1 < len(text) - 2]
            if not cuts:
                continue
            col = rng.choice(cuts)
        target = text[col:]
        if not target.strip():
            continue
        spot = {"project": project.name, "file": str(f.relative_to(project)), "line": i + 1, "column": col + 1}
        if any(s["file"] == spot["file"] and s["line"] == spot["line"] for s in picked):
            continue
        picked.append(spot | {"kind": kind, "target": target})
    return picked


if __name__ == "__main__":
    out = [s for arg in sys.argv[1:] for s in spots(Path(arg), SPOTS)]
    json.dump(out, sys.stdout, indent=1)
