"""Real code for the completion benchmark: pinned releases of well-known pure-Python packages that no model of
ours trains on (models/train keeps these and the others of its evaluation list out of its corpus), fetched once
with pip into the user's cache. Two disjoint sets: one to calibrate the confidence gate on, one to measure."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyserver.paths import cache_dir

# Measured on. Pure-Python wheels; chosen for being widely read and written code of different styles.
BENCH_PACKAGES = {
    "click": "8.1.8",
    "attrs": "25.3.0",
    "requests": "2.32.3",
    "packaging": "24.2",
    "pyparsing": "3.2.3",
    "more-itertools": "10.7.0",
    "jinja2": "3.1.6",
    "werkzeug": "3.1.3",
}
# Calibrated on (the confidence gate's threshold), never measured on.
CALIBRATION_PACKAGES = {"itsdangerous": "2.2.0", "tomli": "2.2.1", "flask": "3.1.1", "python-dateutil": "2.9.0.post0"}
MAX_FILE_CHARS = 200_000  # generated tables teach nothing about completion
PUNCTUATION = ".(,=[:"


@dataclass(frozen=True)
class CodeFile:
    path: str  # package/relative/path.py
    text: str


@dataclass(frozen=True)
class Sample:
    file: CodeFile
    cursor: int  # offset in file.text
    line_end: int  # offset of the end of the cursor's line
    kind: str  # "line_start" (after the indentation) or "mid_line" (after punctuation)

    @property
    def target(self) -> str:
        """What the user would type next: the rest of the line, which the benchmark removes."""
        return self.file.text[self.cursor : self.line_end]

    @property
    def document(self) -> str:
        return self.file.text[: self.cursor] + self.file.text[self.line_end :]


def corpus_dir() -> Path:
    return cache_dir() / "bench-corpus"


def fetch(packages: dict[str, str]) -> list[Path]:
    """The packages' wheels, downloaded with pip on first use (the only network access of any benchmark)."""
    d = corpus_dir()
    d.mkdir(parents=True, exist_ok=True)
    wheels = []
    for name, version in packages.items():
        stem = name.replace("-", "_").lower()
        found = [w for w in d.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
        if not found:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--implementation",
                    "py",
                    "--platform",
                    "any",
                    "--python-version",
                    "3.11",
                    "-d",
                    str(d),
                    f"{name}=={version}",
                ],
                check=True,
            )
            found = [w for w in d.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
        if not found:
            raise RuntimeError(f"pip did not produce a wheel for {name}=={version}")
        wheels.append(found[0])
    return wheels


def wheel_files(wheel: Path) -> list[CodeFile]:
    out = []
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            if not name.endswith(".py") or ".dist-info/" in name:
                continue
            text = z.read(name).decode("utf-8", errors="replace")
            if len(text) <= MAX_FILE_CHARS:
                out.append(CodeFile(f"{wheel.name.split('-')[0]}/{name}", text))
    return out


def folder_files(root: Path) -> list[CodeFile]:
    return [
        CodeFile(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8", errors="replace"))
        for p in sorted(root.rglob("*.py"))
        if p.stat().st_size <= MAX_FILE_CHARS
    ]


def corpus(split: str, local: Path | None = None) -> list[CodeFile]:
    """split: "bench" or "calibration"; `local`: a folder of .py files instead (its files split by a stable
    alternation), for tests that must not touch the network."""
    if local is not None:
        files = folder_files(local)
        return files[split == "calibration" :: 2] or files
    packages = BENCH_PACKAGES if split == "bench" else CALIBRATION_PACKAGES
    return [f for w in fetch(packages) for f in wheel_files(w)]


def _positions(text: str, line_start: int, line_end: int) -> tuple[list[int], list[int]]:
    line = text[line_start:line_end]
    body = len(line) - len(line.lstrip())
    starts = [line_start + body] if line.strip() else []
    mids = [line_start + i for i in range(body + 1, len(line)) if line[i - 1] in PUNCTUATION and line[i:].strip()]
    return starts, mids


def sample_positions(files: list[CodeFile], n: int, seed: int = 0) -> list[Sample]:
    """n cursor positions, half at line starts (after the indentation) and half mid-line right after punctuation,
    in files drawn by their number of lines; sorted by file and offset as an editor session would visit them."""
    rng = np.random.default_rng(seed)
    files = [f for f in files if f.text.count("\n") >= 5]
    if not files:
        return []
    weights = np.array([f.text.count("\n") for f in files], dtype=np.float64)
    weights /= weights.sum()
    line_starts = [[0] + [i + 1 for i, ch in enumerate(f.text) if ch == "\n"] for f in files]
    seen: set[tuple[str, int]] = set()
    out: list[Sample] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        j = int(rng.choice(len(files), p=weights))
        f, starts = files[j], line_starts[j]
        k = int(rng.integers(len(starts)))
        ls = starts[k]
        le = f.text.find("\n", ls)
        le = len(f.text) if le < 0 else le
        at_start, mids = _positions(f.text, ls, le)
        kind = "line_start" if len(out) % 2 == 0 else "mid_line"
        options = at_start if kind == "line_start" else mids
        if not options:
            continue
        cursor = options[int(rng.integers(len(options)))]
        if (f.path, cursor) in seen:
            continue
        seen.add((f.path, cursor))
        out.append(Sample(f, cursor, le, kind))
    return sorted(out, key=lambda s: (s.file.path, s.cursor))
