"""Live updates through the file watcher: create, modify, rename, delete and an editor's atomic save all reach the
index within a second; ignored files and secrets never do."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyserver.index.watcher import IndexWatcher
from pyserver.index.workspace import WorkspaceIndex

DEADLINE_S = 1.0


@pytest.fixture()
def live(tmp_path: Path) -> Iterator[tuple[Path, WorkspaceIndex]]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".gitignore").write_text("ignored/\n")
    (root / "a.py").write_text("def alpha():\n    return 1\n")
    index = WorkspaceIndex(root, tmp_path / "i.sqlite")
    index.scan()
    watcher = IndexWatcher(index, debounce_s=0.1).start()
    yield root, index
    watcher.stop()
    index.close()


def defined(index: WorkspaceIndex) -> set[str]:
    return {r[0] for r in index.reader().conn.execute("SELECT name FROM symbols WHERE kind = 'def'")}


def paths(index: WorkspaceIndex) -> set[str]:
    return {r[0] for r in index.reader().conn.execute("SELECT path FROM files")}


def soon(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    assert check(), f"not reflected within {DEADLINE_S} s"


def test_live_updates(live: tuple[Path, WorkspaceIndex]) -> None:
    root, index = live
    (root / "b.py").write_text("def beta():\n    pass\n")
    soon(lambda: "beta" in defined(index))
    (root / "b.py").write_text("def gamma():\n    pass\n")
    soon(lambda: "gamma" in defined(index) and "beta" not in defined(index))
    (root / "b.py").rename(root / "c.py")
    soon(lambda: paths(index) == {"a.py", "c.py"})
    (root / "c.py").unlink()
    soon(lambda: paths(index) == {"a.py"})
    # An editor's atomic save: write a temporary file, then rename it over the original.
    tmp = root / ".a.py.swp"
    tmp.write_text("def alpha2():\n    return 2\n")
    os.replace(tmp, root / "a.py")
    soon(lambda: "alpha2" in defined(index) and "alpha" not in defined(index))
    # A new folder with files in it, then gone again.
    (root / "pkg").mkdir()
    (root / "pkg" / "d.py").write_text("def delta():\n    pass\n")
    soon(lambda: "delta" in defined(index))
    (root / "pkg" / "d.py").unlink()
    (root / "pkg").rmdir()
    soon(lambda: paths(index) == {"a.py"})


def test_ignored_and_secret_files_never_appear(live: tuple[Path, WorkspaceIndex]) -> None:
    root, index = live
    (root / "ignored").mkdir()
    (root / "ignored" / "x.py").write_text("def hidden():\n    pass\n")
    (root / ".env").write_text("TOKEN=abc\n")
    (root / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (root / "marker.py").write_text("def marker():\n    pass\n")  # written last: once it is in, the rest was seen
    soon(lambda: "marker" in defined(index))
    assert paths(index) == {"a.py", "marker.py"}
