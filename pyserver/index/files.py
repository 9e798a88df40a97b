"""Which workspace files are indexed: .gitignore (every level), the user's include/exclude globs, and never
binaries, generated or vendored folders, files over the size cap, or secrets. Never anything outside the folder
either: a symlinked file is read only when its target is inside the folder and would be indexed itself, folders are
never entered through a symlink (so no loops), and a name that is not UTF-8 (which the index cannot store) is
skipped and logged."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pathspec

log = logging.getLogger("ryzanstein.index")

MAX_FILE_BYTES = 512 * 1024
BINARY_SNIFF_BYTES = 8192

# Folders that hold generated, installed or vendored code (or no code at all).
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        ".env",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".hypothesis",
        "site-packages",
        "dist",
        "build",
        "out",
        "target",
        ".next",
        ".nuxt",
        ".cache",
        "vendor",
        "third_party",
        "bower_components",
        ".idea",
        ".vscode-test",
        ".gradle",
        "coverage",
        "htmlcov",
        ".eggs",
    }
)
# Secrets: never read, whatever the globs say.
SECRET_PATTERNS = pathspec.GitIgnoreSpec.from_lines(
    [
        ".env",
        ".env.*",
        "*.env",
        ".envrc",
        "*.pem",
        "*.key",
        "*.p12",
        "*.pfx",
        "*.crt",
        "*.cer",
        "*.der",
        "*.jks",
        "*.keystore",
        "*.asc",
        "*.gpg",
        "id_rsa*",
        "id_dsa*",
        "id_ecdsa*",
        "id_ed25519*",
        ".netrc",
        ".pgpass",
        ".npmrc",
        ".pypirc",
        "credentials",
        "credentials.*",
        "*secret*",
        ".htpasswd",
        "*.kdbx",
    ]
)
GENERATED_SUFFIXES = (".min.js", ".min.css", ".map", ".lock", "-lock.json", ".pb.go", "_pb2.py", ".generated.ts")
# Text extensions worth indexing; anything else is skipped (images, archives, data dumps).
LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".php": "php",
    ".cs": "csharp",
    ".swift": "swift",
    ".scala": "scala",
    ".lua": "lua",
    ".sh": "shell",
    ".bash": "shell",
    ".sql": "sql",
    ".md": "markdown",
    ".rst": "rst",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".html": "html",
    ".css": "css",
    ".vue": "vue",
    ".svelte": "svelte",
    ".zig": "zig",
    ".ex": "elixir",
    ".exs": "elixir",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".r": "r",
    ".jl": "julia",
    ".dart": "dart",
    ".proto": "proto",
    ".cmake": "cmake",
    ".mk": "make",
}
NAMED_FILES = {"Makefile": "make", "Dockerfile": "docker", "CMakeLists.txt": "cmake"}


def language_of(path: str | PurePosixPath) -> str | None:
    p = PurePosixPath(path)
    return NAMED_FILES.get(p.name) or LANGUAGES.get(p.suffix.lower())


def is_secret(rel: str) -> bool:
    return SECRET_PATTERNS.match_file(rel)


def utf8_name(rel: str) -> bool:
    """Whether the path can be stored: a name that is not UTF-8 comes from os.walk or watchdog with its bad bytes as
    lone surrogates (Python's surrogateescape), which SQLite, like any UTF-8 encoder, refuses."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def skip_bad_name(rel: str) -> None:
    log.warning("index: skipped %s: its name is not UTF-8", os.fsencode(rel))


def looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a multi-byte character cut at the sniff boundary is fine
    return False


@dataclass
class FileRules:
    """The index's view of a workspace folder. Paths are POSIX paths relative to `root`."""

    root: Path
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_bytes: int = MAX_FILE_BYTES
    _include: pathspec.GitIgnoreSpec | None = field(init=False, default=None)
    _exclude: pathspec.GitIgnoreSpec = field(init=False)
    _gitignores: dict[str, pathspec.GitIgnoreSpec | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self._include = pathspec.GitIgnoreSpec.from_lines(self.include) if self.include else None
        self._exclude = pathspec.GitIgnoreSpec.from_lines(self.exclude)

    def _gitignore(self, rel_dir: str) -> pathspec.GitIgnoreSpec | None:
        if rel_dir not in self._gitignores:
            f = self.root / rel_dir / ".gitignore"
            try:
                lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
                self._gitignores[rel_dir] = pathspec.GitIgnoreSpec.from_lines(lines)
            except OSError:
                self._gitignores[rel_dir] = None
        return self._gitignores[rel_dir]

    def forget_gitignore(self, rel_dir: str) -> None:
        self._gitignores.pop(rel_dir, None)

    def _ignored_by_git(self, rel: str, is_dir: bool) -> bool:
        parts = rel.split("/")
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            spec = self._gitignore(base)
            if spec is not None:
                sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
                if spec.match_file(sub):
                    return True
        return False

    def dir_allowed(self, rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if name in SKIPPED_DIRS or name.endswith(".egg-info"):
            return False
        return not self._ignored_by_git(rel, True) and not self._exclude.match_file(rel + "/")

    def path_allowed(self, rel: str) -> bool:
        """Everything that can be decided from the path alone (the parents included)."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if not self.dir_allowed("/".join(parts[:i])):
                return False
        name = parts[-1]
        if is_secret(rel) or name.endswith(GENERATED_SUFFIXES) or language_of(rel) is None:
            return False
        if self._include is not None and not self._include.match_file(rel):
            return False
        return not self._exclude.match_file(rel) and not self._ignored_by_git(rel, False)

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """The POSIX path relative to the root, or None outside it."""
        try:
            rel = Path(os.path.abspath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None
        return "" if rel == "." else rel

    def inside(self, rel: str) -> Path | None:
        """The file's real path when reading it stays inside the root: not reached through a symlinked folder, and,
        when it is a symlink, one whose target (followed to the end) is inside the root and indexable by itself.
        None otherwise, for a symlink loop, or when it is gone."""
        p = self.root / rel
        try:
            real = Path(os.path.realpath(p, strict=True))
        except (OSError, RuntimeError):  # gone, or a loop
            return None
        if os.path.realpath(p.parent) != str(p.parent):  # a folder on the way is a symlink
            return None
        if real == p:
            return p
        try:
            target = real.relative_to(self.root).as_posix()
        except ValueError:  # a link out of the workspace
            return None
        return real if self.path_allowed(target) else None

    def read(self, rel: str) -> tuple[str, os.stat_result] | None:
        """The text of an indexable file, or None (gone, outside the root, too large, binary, not UTF-8)."""
        p = self.inside(rel)
        if p is None:
            return None
        try:
            st = p.stat()
            if not p.is_file() or st.st_size > self.max_bytes:
                return None
            data = p.read_bytes()
        except OSError:
            return None
        if looks_binary(data[:BINARY_SNIFF_BYTES]):
            return None
        return data.decode("utf-8", errors="replace"), st

    def walk(self) -> Iterator[str]:
        """Every indexable path (by path rules; `read` decides on content), in a stable order."""
        for dirpath, dirnames, filenames in os.walk(self.root):  # (never into symlinked folders)
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            kept = []
            for d in sorted(dirnames):
                rel = f"{rel_dir}/{d}".lstrip("/")
                if os.path.islink(os.path.join(dirpath, d)) or not self.dir_allowed(rel):
                    continue
                if not utf8_name(rel):
                    skip_bad_name(rel)
                    continue
                kept.append(d)
            dirnames[:] = kept
            for name in sorted(filenames):
                rel = f"{rel_dir}/{name}".lstrip("/")
                if not self.path_allowed(rel):
                    continue
                if utf8_name(rel):
                    yield rel
                else:
                    skip_bad_name(rel)
