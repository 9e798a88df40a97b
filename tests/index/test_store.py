"""The index file: one transaction per file, rebuilt when old or damaged, a clear error when held elsewhere, and
consistent after the indexer is killed."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

from pyserver.index import store as store_mod
from pyserver.index.chunking import chunk_file
from pyserver.index.embedder import binary_signatures, int8_vectors
from pyserver.index.store import FileRecord, IndexStore, IndexUnavailable

CODE = "def load_config(path):\n    return parse_toml(path)\n\n\ndef parse_toml(p):\n    return {}\n"


def put(store: IndexStore, path: str, text: str) -> None:
    chunks, symbols = chunk_file(text, "python")
    store.replace_file(FileRecord(path, str(hash(text)), 0.0, len(text), "python"), chunks, symbols)


def consistent(store: IndexStore) -> None:
    c = store.conn
    assert c.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    chunks = {r[0] for r in c.execute("SELECT id FROM chunks")}
    assert {r[0] for r in c.execute("SELECT rowid FROM chunks_fts")} == chunks
    assert {r[0] for r in c.execute("SELECT chunk_id FROM vectors")} <= chunks
    files = {r[0] for r in c.execute("SELECT id FROM files")}
    assert {r[0] for r in c.execute("SELECT DISTINCT file_id FROM chunks")} <= files
    assert {r[0] for r in c.execute("SELECT DISTINCT file_id FROM symbols")} <= files


def test_replace_and_remove(tmp_path: Path) -> None:
    s = IndexStore(tmp_path / "i.sqlite")
    put(s, "a.py", CODE)
    put(s, "b.py", "def other():\n    load_config('x')\n")
    assert s.counts() == {"files": 2, "chunks": 3, "symbols": 5, "vectors": 0}
    assert [n for n, _ in s.definitions(["parse_toml", "load_config"])] == ["load_config", "parse_toml"]
    hits = s.bm25('"toml"', 5)
    assert [c.symbol for c in s.chunks([cid for cid, _ in hits])] == ["parse_toml", "load_config"]
    put(s, "a.py", "def renamed():\n    pass\n")  # the old rows go in the same transaction
    assert s.definitions(["parse_toml"]) == [] and s.counts()["chunks"] == 2
    ids = [cid for cid, _ in s.chunks_without_vectors(10)]
    v = np.random.default_rng(0).standard_normal((len(ids), 384)).astype(np.float32)
    q8, sc = int8_vectors(v)
    s.put_vectors(ids, binary_signatures(v), q8, sc)
    got_ids, sigs = s.signatures()
    assert got_ids.tolist() == sorted(ids) and np.array_equal(sigs, binary_signatures(v)[np.argsort(ids)])
    assert s.remove_file("a.py") is not None and s.remove_file("a.py") is None
    consistent(s)
    assert s.counts() == {"files": 1, "chunks": 1, "symbols": 2, "vectors": 1}


def test_a_failed_write_leaves_the_old_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = IndexStore(tmp_path / "i.sqlite")
    put(s, "a.py", CODE)
    monkeypatch.setattr(store_mod, "identifier_terms", lambda text: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        put(s, "a.py", "def new():\n    pass\n")
    assert [n for n, _ in s.definitions(["load_config"])] == ["load_config"]
    consistent(s)


def test_old_or_damaged_files_are_rebuilt(tmp_path: Path) -> None:
    p = tmp_path / "i.sqlite"
    s = IndexStore(p)
    put(s, "a.py", CODE)
    s.close()
    # Closed, not just committed: a connection left open keeps the WAL, and in it every page of the rebuilt file,
    # which SQLite would read past the garbage written below (the rebuild is in place now, not a new file).
    with contextlib.closing(sqlite3.connect(p)) as c:
        c.execute("PRAGMA user_version = 0")  # an older schema
    s = IndexStore(p)
    assert s.rebuilt and s.counts()["files"] == 0
    s.close()
    p.write_bytes(b"SQLite format 3\x00" + os.urandom(5000))  # garbage after a valid header
    s = IndexStore(p)
    assert s.rebuilt and s.counts()["files"] == 0
    put(s, "a.py", CODE)
    consistent(s)


def test_a_file_held_by_another_process_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "i.sqlite"
    IndexStore(p).close()
    holder = sqlite3.connect(p, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 100)
    with pytest.raises(IndexUnavailable, match="i.sqlite"):
        IndexStore(p)
    holder.execute("ROLLBACK")
    holder.close()
    assert not IndexStore(p).rebuilt  # nothing was thrown away meanwhile


def test_a_killed_indexer_leaves_a_consistent_database(tmp_path: Path) -> None:
    db = tmp_path / "i.sqlite"
    stdlib = sysconfig.get_paths()["stdlib"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyserver", "index", stdlib, "--db", str(db), "--no-embed"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:  # kill it mid-scan: some files written, most not
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as c:
                    if c.execute("SELECT count(*) FROM files").fetchone()[0] > 100:
                        break
            except sqlite3.Error:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    s = IndexStore(db)
    assert not s.rebuilt
    consistent(s)
    n = s.counts()["files"]
    assert 100 <= n < 1800
