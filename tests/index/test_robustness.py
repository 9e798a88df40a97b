"""What a tester broke the index with (issue 20): a file name that is not UTF-8, two indexers on one database, a
half-made schema while another process holds the file, the file deleted under an open index, garbage bytes, a lock
held elsewhere, and symlinks that lead out of the workspace."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from pyserver.index import store as store_mod
from pyserver.index.store import SCHEMA_VERSION, IndexStore, IndexUnavailable
from pyserver.index.watcher import IndexWatcher
from pyserver.index.workspace import WorkspaceIndex
from tests.index.test_store import CODE, consistent, put

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="file names as raw bytes, inode checks: Linux")


def indexed_paths(index: WorkspaceIndex) -> set[str]:
    return {r[0] for r in index.reader().conn.execute("SELECT path FROM files")}


def defined(store: IndexStore) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT name FROM symbols WHERE kind = 'def'")}


# ---- file names that are not UTF-8 ------------------------------------------------------------------------------


def write_raw(folder: Path, name: bytes, text: str) -> Path:
    """A file whose name is these bytes (on Linux any bytes but / and NUL make a name)."""
    raw = os.path.join(os.fsencode(folder), name)
    with open(raw, "wb") as f:
        f.write(text.encode())
    return Path(os.fsdecode(raw))  # the str Python and watchdog hand around: the bad byte as a lone surrogate


@linux_only
def test_a_name_that_is_not_utf8_is_skipped_and_the_rest_indexed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "a.py").write_text("def alpha():\n    return 1\n")
    write_raw(root, b"caf\xe9.py", "def latin1_named():\n    pass\n")
    os.mkdir(os.path.join(os.fsencode(root), b"dossier_\xe9t\xe9"))
    write_raw(
        Path(os.fsdecode(os.path.join(os.fsencode(root), b"dossier_\xe9t\xe9"))), b"x.py", "def inner():\n    pass\n"
    )
    (root / "pkg" / "z.py").write_text("def zeta():\n    return 2\n")  # walked after the bad names
    index = WorkspaceIndex(root, tmp_path / "i.sqlite")
    with caplog.at_level(logging.WARNING, logger="ryzanstein.index"):
        rep = index.scan()
    assert indexed_paths(index) == {"a.py", "pkg/z.py"}
    assert rep.files_indexed == 2
    assert "not UTF-8" in caplog.text and "caf\\xe9.py" in caplog.text  # logged, with the name's bytes shown
    index.close()


@linux_only
def test_the_watchers_batch_goes_on_past_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.py").write_text("def alpha():\n    return 1\n")
    index = WorkspaceIndex(root, tmp_path / "i.sqlite")
    index.scan()
    # One batch, as the watcher hands it over: the bad name sorts first.
    bad = write_raw(root, b"caf\xe9.py", "def latin1_named():\n    pass\n")
    (root / "b.py").write_text("def beta():\n    pass\n")
    (root / "c.py").write_text("def gamma():\n    pass\n")
    rep = index.update_paths(sorted([str(bad), str(root / "b.py"), str(root / "c.py")]))
    assert rep.files_indexed == 2 and indexed_paths(index) == {"a.py", "b.py", "c.py"}
    # And live, through watchdog: both files land in one debounced batch.
    watcher = IndexWatcher(index, debounce_s=0.3).start()
    try:
        write_raw(root, b"\xff\xfe.py", "def broken_name():\n    pass\n")
        (root / "d.py").write_text("def delta():\n    pass\n")
        deadline = time.monotonic() + 3.0
        while "d.py" not in indexed_paths(index) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert indexed_paths(index) == {"a.py", "b.py", "c.py", "d.py"}
    index.close()


# ---- the database file ------------------------------------------------------------------------------------------


def open_together(path: Path, n: int) -> tuple[list[IndexStore], list[BaseException]]:
    """n threads open the same file at once (each its own connection, as n processes would)."""
    barrier = threading.Barrier(n)
    opened: list[IndexStore] = []
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            opened.append(IndexStore(path))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return opened, errors


def test_two_indexers_creating_one_database_both_get_it(tmp_path: Path) -> None:
    """Every opener of a fresh file races to make the schema; the loser waits and finds it made."""
    for attempt in range(12):
        opened, errors = open_together(tmp_path / f"race{attempt}.sqlite", 4)
        assert errors == []
        assert sum(s.rebuilt for s in opened) == 0  # a fresh file is made once, never "rebuilt"
        put(opened[0], "a.py", CODE)
        assert opened[-1].counts()["files"] == 1  # one database, seen by all
        for s in opened:
            consistent(s)
            s.close()


def half_made(path: Path) -> None:
    """What an indexer killed in the middle of the old, non-transactional schema creation left."""
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, hash TEXT NOT NULL)")
        c.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, file_id INTEGER, text TEXT)")
        c.execute("INSERT INTO files (path, hash) VALUES ('stale.py', 'x')")
    c.close()


@linux_only
def test_a_half_made_schema_is_rebuilt_in_place_not_deleted_under_its_holder(tmp_path: Path) -> None:
    p = tmp_path / "i.sqlite"
    half_made(p)
    inode = p.stat().st_ino
    holder = sqlite3.connect(p, isolation_level=None)  # another process's connection, open all along
    assert holder.execute("SELECT count(*) FROM files").fetchone()[0] == 1
    s = IndexStore(p)
    assert s.rebuilt
    assert p.stat().st_ino == inode  # the very file the holder has open, not a new one beside it
    assert holder.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert holder.execute("SELECT count(*) FROM files").fetchone()[0] == 0  # the holder sees the rebuilt schema
    put(s, "a.py", CODE)
    assert holder.execute("SELECT path FROM files").fetchall() == [("a.py",)]  # and what is written to it
    consistent(s)
    holder.close()
    s.close()


def test_an_old_schema_waits_for_a_reader_then_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuild takes the write lock: a writer elsewhere holds it up, and the message names the lock."""
    p = tmp_path / "i.sqlite"
    half_made(p)
    writer = sqlite3.connect(p, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 200)
    t0 = time.monotonic()
    with pytest.raises(IndexUnavailable, match="locked by another process"):
        IndexStore(p)
    assert time.monotonic() - t0 >= 0.15  # it waited before saying so
    writer.execute("ROLLBACK")
    writer.close()
    s = IndexStore(p)
    assert s.rebuilt and s.counts()["files"] == 0
    s.close()


@linux_only
def test_a_database_deleted_under_an_open_index_is_recreated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.py").write_text("def alpha():\n    return 1\n")
    (root / "b.py").write_text("def beta():\n    return 2\n")
    db = tmp_path / "i.sqlite"
    index = WorkspaceIndex(root, db)
    index.scan()
    index.reader().counts()  # a reader connection in this thread too
    for suffix in ("", "-wal", "-shm"):  # `rm -f i.sqlite*` by a user, or another indexer's cleanup
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    (root / "c.py").write_text("def gamma():\n    return 3\n")
    with caplog.at_level(logging.WARNING, logger="ryzanstein.index"):
        rep = index.update_paths([root / "c.py"])
    assert "deleted or replaced" in caplog.text
    assert db.exists()
    other = IndexStore(db)  # what anyone opening the path now finds: everything, not just the one update
    assert {r[0] for r in other.conn.execute("SELECT path FROM files")} == {"a.py", "b.py", "c.py"}
    assert rep.files_indexed == 3
    assert indexed_paths(index) == {"a.py", "b.py", "c.py"}  # the reader followed to the new file
    other.close()
    # A store used directly: its next write lands in the file at the path.
    s = IndexStore(tmp_path / "j.sqlite")
    put(s, "a.py", CODE)
    (tmp_path / "j.sqlite").unlink()
    put(s, "b.py", CODE)
    again = IndexStore(tmp_path / "j.sqlite")
    assert {r[0] for r in again.conn.execute("SELECT path FROM files")} == {"b.py"}
    assert s.generation == 1
    index.close()


def test_a_corrupt_database_is_set_aside_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "i.sqlite"
    neighbour = IndexStore(tmp_path / "other.sqlite")  # another folder's index in the same storage
    put(neighbour, "n.py", CODE)
    neighbour.close()
    garbage = b"\x13\x37" * 3000
    p.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="ryzanstein.index"):
        s = IndexStore(p)
    assert s.rebuilt and s.counts()["files"] == 0
    assert "corrupt" in caplog.text and str(p) in caplog.text
    assert Path(f"{p}.corrupt").read_bytes() == garbage  # kept for a look, not thrown away
    put(s, "a.py", CODE)
    consistent(s)
    s.close()
    assert defined(IndexStore(tmp_path / "other.sqlite")) == {"load_config", "parse_toml"}
    # Damage past a valid header: the same.
    p.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    s = IndexStore(p)
    assert s.rebuilt and s.counts()["files"] == 0
    s.close()


def test_a_locked_database_waits_then_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "i.sqlite"
    IndexStore(p).close()
    holder = sqlite3.connect(p, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 300)
    t0 = time.monotonic()
    with pytest.raises(IndexUnavailable, match=r"i\.sqlite.*locked by another process.*0\.3 s"):
        IndexStore(p)
    assert time.monotonic() - t0 >= 0.25
    holder.execute("ROLLBACK")
    holder.close()
    s = IndexStore(p)
    assert not s.rebuilt
    s.close()


# ---- symlinks ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlinks_never_lead_out_of_the_workspace(tmp_path: Path) -> None:
    outside = tmp_path / "home" / ".aws"
    outside.mkdir(parents=True)
    (outside / "credentials.py").write_text("def outside_secret():\n    return 'TOPSECRET_OUTSIDE'\n")
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "real.py").write_text("def real_function():\n    return 1\n")
    (root / "settings_local.py").symlink_to(outside / "credentials.py")  # a file link out
    (root / "aws").symlink_to(outside, target_is_directory=True)  # a folder link out
    (root / "alias.py").symlink_to(root / "src" / "real.py")  # a link inside: followed once
    (root / "env_alias.py").symlink_to(root / ".env")  # a link to a secret inside
    (root / ".env").write_text("TOKEN=abc\n")
    (root / "loop_a.py").symlink_to(root / "loop_b.py")  # a loop
    (root / "loop_b.py").symlink_to(root / "loop_a.py")
    (root / "src" / "up").symlink_to(root, target_is_directory=True)  # a folder loop
    index = WorkspaceIndex(root, tmp_path / "i.sqlite")
    index.scan()
    assert indexed_paths(index) == {"src/real.py", "alias.py"}
    assert index.search("TOPSECRET_OUTSIDE", dense=False) == []
    # The watcher's path: events for the links themselves, and for a file seen through the folder link.
    rep = index.update_paths([root / "settings_local.py", root / "aws", root / "aws" / "credentials.py"])
    assert rep.files_indexed == 0 and indexed_paths(index) == {"src/real.py", "alias.py"}
    index.close()
