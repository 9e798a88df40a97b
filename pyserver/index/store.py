"""The index's SQLite file (WAL), through sqlite-utils: files, chunks, symbols, an FTS5 table of split identifiers
and the compressed embeddings. One file is replaced in one transaction, so a killed indexer leaves either the old
rows or the new ones.

Opening is safe beside other indexers and readers of the same file:
- the schema is made in one write transaction, so two openers of a fresh file never both make it (the second waits
  on the first, up to BUSY_TIMEOUT_MS, and finds it made);
- a file with another schema version, or a half-made one, is rebuilt in place inside that transaction: never
  deleted, since another process may hold it open (it sees the new schema);
- a file SQLite cannot read (garbage, damaged pages) is set aside as `NAME.corrupt`, with its -wal and -shm, and a
  new one made, under a lock file (`NAME.lock`) so that two openers never set aside each other's new file;
- a file held locked elsewhere is waited for, then reported (IndexUnavailable says so);
- a file deleted or replaced under an open store (its inode is no longer the path's) is noticed before every write
  and reopened (`generation` counts how often), instead of writing into a file nobody will read again.

Not thread-safe: each thread that uses the index opens its own `IndexStore` (WAL lets readers run beside the
writer)."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from pyserver.index.chunking import Chunk, Symbol
from pyserver.index.embedder import DIM, SIGNATURE_BYTES
from pyserver.index.identifiers import identifier_terms

try:  # POSIX; on Windows an open file cannot be renamed, which is the protection the lock gives here
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("ryzanstein.index")

# 2: text is redacted of secrets before it is stored (pyserver/index/secrets.py); a version 1 file may hold some,
# so it is rebuilt (with secure_delete, so the old pages are zeroed).
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5000
DF_CACHE_S = 60.0
SIDE_FILES = ("-wal", "-shm", "-journal")
# SQLite's primary result codes (sqlite3 names them from Python 3.11 only).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26


class IndexUnavailable(RuntimeError):
    """The index file cannot be used (held by another process, unwritable); the message says which and why."""


class _Corrupt(Exception):
    """The file is not a database SQLite can read (raised inside opening only)."""


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the workspace root, POSIX
    hash: str
    mtime: float
    size: int
    language: str | None


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    start_line: int
    end_line: int
    kind: str
    symbol: str
    text: str


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _is_busy(exc: sqlite3.Error) -> bool:
    code = _code(exc)
    if code is not None:
        return code in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _is_corrupt(exc: sqlite3.Error) -> bool:
    code = _code(exc)
    if code is not None:
        return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return "malformed" in str(exc) or "not a database" in str(exc)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def _open_lock(path: Path) -> Iterator[None]:
    """Serialises the slow part of opening (making, rebuilding, setting aside) between processes and threads: flock
    locks belong to the open file, so two opens in one process exclude each other too. The lock file stays."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError("database is locked (another process is opening it)") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def _set_aside(path: Path, suffix: str) -> None:
    """Renames the file and its -wal/-shm/-journal (never deletes: another process may hold them open)."""
    for side in ("", *SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{side}", f"{path}.{suffix}{side}")


def _wal(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError as exc:
        if _is_corrupt(exc):
            raise _Corrupt(str(exc)) from exc
        raise


def _state(conn: sqlite3.Connection) -> str:
    """'ready' (this schema, checked), 'empty' (a new file) or 'old' (another version, or half made); raises
    _Corrupt for a file SQLite cannot read."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise _Corrupt("quick_check failed")
            return "ready"
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if _is_corrupt(exc):
            raise _Corrupt(str(exc)) from exc
        raise
    return "empty" if version == 0 and objects == 0 else "old"


def _drop_everything(conn: sqlite3.Connection) -> None:
    """Every table, index and virtual table (inside the caller's transaction); virtual tables first, since dropping
    one drops its shadow tables."""
    conn.execute("PRAGMA secure_delete = ON")  # the old rows may hold what is no longer stored: zero their pages
    while True:
        virtual = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' "
            "ORDER BY name LIKE '%vocab%' DESC LIMIT 1"
        ).fetchone()
        if virtual is None:
            break
        conn.execute(f'DROP TABLE "{virtual[0]}"')
    for kind, name in conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger', 'table') AND name NOT LIKE 'sqlite_%' "
        "ORDER BY type = 'table'"
    ).fetchall():
        conn.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')  # (a table's indexes and triggers go with it)
    conn.execute("PRAGMA secure_delete = OFF")


class IndexStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rebuilt = False  # True when an old, half-made or damaged file was rebuilt on open
        self.generation = 0  # how often the file was found deleted or replaced under this store, and reopened
        self._file: tuple[int, int] | None = None  # (device, inode) of the file this store has open
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = self._open_or_raise()
        self._df_cache: dict[str, int] = {}
        self._df_time = 0.0

    def _open_or_raise(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise IndexUnavailable(
                    f"index {self.path}: locked by another process (waited {BUSY_TIMEOUT_MS / 1000:g} s): {exc}"
                ) from exc
            raise IndexUnavailable(f"index {self.path}: {exc}") from exc
        except OSError as exc:
            raise IndexUnavailable(f"index {self.path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size > 0:  # the common case: made already, no lock
            conn = _connect(self.path)
            self._file = _identity(self.path)
            try:
                _wal(conn)
                if _state(conn) == "ready":
                    return conn
            except _Corrupt:
                pass  # set aside below, under the lock
            except BaseException:
                conn.close()
                raise
            conn.close()
        with _open_lock(self.path):
            return self._open_locked()

    def _open_locked(self) -> sqlite3.Connection:
        if not self.path.exists() and any(os.path.exists(f"{self.path}{s}") for s in SIDE_FILES):
            # A -wal or -shm without its database belongs to a file deleted meanwhile: a new file must not read it.
            log.warning("index %s: moving aside the -wal/-shm of a deleted database", self.path)
            _set_aside(self.path, "orphan")
        conn = _connect(self.path)
        self._file = _identity(self.path)
        try:
            return self._make(conn)
        except _Corrupt as exc:
            conn.close()
            log.error(
                "index %s is corrupt (%s): set aside as %s.corrupt and rebuilt from the workspace",
                self.path,
                exc,
                self.path.name,
            )
            _set_aside(self.path, "corrupt")
            self.rebuilt = True
            conn = _connect(self.path)
            self._file = _identity(self.path)
            try:
                return self._make(conn)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise

    def _make(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """The schema in one write transaction: made if the file is new, rebuilt in place if it is old."""
        _wal(conn)
        with self._transaction(conn):
            state = _state(conn)  # again, under the write lock: another opener may have made it meanwhile
            if state == "old":
                log.warning("index %s had an old or half-made schema: rebuilt in place", self.path)
                self.rebuilt = True
                _drop_everything(conn)
            if state != "ready":
                self._create_schema(sqlite_utils.Database(conn))
        return conn

    @staticmethod
    @contextlib.contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the write lock up front, so the busy timeout applies)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # an error may have ended it already
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction on the file at the path (reopened first if it was deleted or replaced)."""
        self.ensure_current()
        return self._transaction(self.conn)

    def ensure_current(self) -> bool:
        """Reopens when the file at the path is no longer the one this store has open (deleted, replaced, set
        aside as corrupt by another opener); True when it did."""
        if self._file is not None and _identity(self.path) == self._file:
            return False
        log.warning("index %s was deleted or replaced while open: reopening it", self.path)
        self.conn.close()
        self.conn = self._open_or_raise()
        self.generation += 1
        self._df_cache.clear()
        return True

    @staticmethod
    def _create_schema(db: sqlite_utils.Database) -> None:
        # Inside the caller's transaction (sqlite-utils nests its own as savepoints); the version is written last.
        table = db.table  # (db[name] may also be a view; these are tables)
        table("files").create(
            {"id": int, "path": str, "hash": str, "mtime": float, "size": int, "language": str},
            pk="id",
            not_null={"path", "hash"},
        )
        table("files").create_index(["path"], unique=True)
        table("chunks").create(
            {"id": int, "file_id": int, "start_line": int, "end_line": int, "kind": str, "symbol": str, "text": str},
            pk="id",
            foreign_keys=[("file_id", "files", "id")],
        )
        table("chunks").create_index(["file_id"])
        table("symbols").create(
            {"file_id": int, "chunk_id": int, "name": str, "kind": str, "line": int},
            foreign_keys=[("file_id", "files", "id")],
        )
        table("symbols").create_index(["name", "kind"])
        table("symbols").create_index(["file_id"])
        table("vectors").create({"chunk_id": int, "sig": bytes, "q8": bytes, "scale": float}, pk="chunk_id")
        db.conn.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(terms, tokenize = 'unicode61')")
        db.conn.execute("CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row')")
        db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    # ---- writing -----------------------------------------------------------------------------------------

    def file_hashes(self) -> dict[str, str]:
        return {path: h for path, h in self.conn.execute("SELECT path, hash FROM files")}

    def _delete_file_rows(self, file_id: int) -> list[int]:
        c = self.conn
        chunk_ids = [(r[0],) for r in c.execute("SELECT id FROM chunks WHERE file_id = ?", (file_id,))]
        c.executemany("DELETE FROM chunks_fts WHERE rowid = ?", chunk_ids)
        c.executemany("DELETE FROM vectors WHERE chunk_id = ?", chunk_ids)
        c.execute("DELETE FROM symbols WHERE file_id = ?", (file_id,))
        c.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
        return [int(r[0]) for r in chunk_ids]

    def replace_file(self, rec: FileRecord, chunks: Sequence[Chunk], symbols: Sequence[Symbol]) -> list[int]:
        """The file's rows, old ones gone, in one transaction; returns the ids of the chunks that went."""
        removed: list[int] = []
        with self._write() as c:
            row = c.execute("SELECT id FROM files WHERE path = ?", (rec.path,)).fetchone()
            if row is not None:
                file_id = int(row[0])
                removed = self._delete_file_rows(file_id)
                c.execute(
                    "UPDATE files SET hash = ?, mtime = ?, size = ?, language = ? WHERE id = ?",
                    (rec.hash, rec.mtime, rec.size, rec.language, file_id),
                )
            else:
                cur = c.execute(
                    "INSERT INTO files (path, hash, mtime, size, language) VALUES (?, ?, ?, ?, ?)",
                    (rec.path, rec.hash, rec.mtime, rec.size, rec.language),
                )
                file_id = int(cur.lastrowid or 0)
            starts = []
            for ch in chunks:
                cur = c.execute(
                    "INSERT INTO chunks (file_id, start_line, end_line, kind, symbol, text) VALUES (?, ?, ?, ?, ?, ?)",
                    (file_id, ch.start_line, ch.end_line, ch.kind, ch.symbol, ch.text),
                )
                chunk_id = int(cur.lastrowid or 0)
                starts.append((ch.start_line, ch.end_line, chunk_id))
                terms = identifier_terms(ch.text) + identifier_terms(rec.path)
                c.execute("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", (chunk_id, " ".join(terms)))
            c.executemany(
                "INSERT INTO symbols (file_id, chunk_id, name, kind, line) VALUES (?, ?, ?, ?, ?)",
                [(file_id, _chunk_at(starts, s.line), s.name, s.kind, s.line) for s in symbols],
            )
        return removed

    def remove_file(self, path: str) -> list[int] | None:
        """The ids of the removed file's chunks, or None when the file was not in the index."""
        removed = None
        with self._write() as c:
            row = c.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if row is not None:
                removed = self._delete_file_rows(int(row[0]))
                c.execute("DELETE FROM files WHERE id = ?", (int(row[0]),))
        return removed

    def chunks_without_vectors(self, limit: int) -> list[tuple[int, str]]:
        return [
            (int(i), t)
            for i, t in self.conn.execute(
                "SELECT c.id, c.text FROM chunks c LEFT JOIN vectors v ON v.chunk_id = c.id "
                "WHERE v.chunk_id IS NULL ORDER BY c.id LIMIT ?",
                (limit,),
            )
        ]

    def put_vectors(
        self,
        chunk_ids: Sequence[int],
        sigs: np.ndarray,
        q8: np.ndarray,
        scales: np.ndarray,
        generation: int | None = None,
    ) -> np.ndarray:
        """Vectors of chunks that still exist (a chunk replaced meanwhile is skipped); returns the positions (into
        chunk_ids) of those written. `generation`: the store's when the chunks were read; if the file was reopened
        since, their ids may name other chunks now, and nothing is written."""
        self.ensure_current()
        if generation is not None and generation != self.generation:
            return np.zeros(0, np.int64)
        with self._write() as c:
            c.executemany(
                "INSERT OR REPLACE INTO vectors (chunk_id, sig, q8, scale) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
                [
                    (int(i), sigs[k].tobytes(), q8[k].tobytes(), float(scales[k]), int(i))
                    for k, i in enumerate(chunk_ids)
                ],
            )
            marks = ",".join("?" * len(chunk_ids))
            written = (
                {
                    int(r[0])
                    for r in c.execute(f"SELECT id FROM chunks WHERE id IN ({marks})", [int(i) for i in chunk_ids])
                }
                if len(chunk_ids)
                else set()
            )
        return np.array([k for k, i in enumerate(chunk_ids) if int(i) in written], np.int64)

    # ---- reading -----------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return {
            t: int(self.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            for t in ("files", "chunks", "symbols", "vectors")
        }

    def vector_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def chunks(self, ids: Iterable[int]) -> list[StoredChunk]:
        ids = list(ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT c.id, f.path, c.start_line, c.end_line, c.kind, c.symbol, c.text FROM chunks c "
            f"JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})",
            ids,
        ).fetchall()
        by_id = {int(r[0]): StoredChunk(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], r[5] or "", r[6]) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def bm25(self, match: str, limit: int) -> list[tuple[int, float]]:
        """(chunk id, score: higher is better) for an FTS5 MATCH expression."""
        if not match:
            return []
        try:
            rows = self.conn.execute(
                "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY bm25(chunks_fts) LIMIT ?",
                (match, limit),
            ).fetchall()
        except sqlite3.OperationalError:  # a query FTS5 cannot parse finds nothing
            return []
        return [(int(r[0]), -float(r[1])) for r in rows]

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each term (0 for none). Remembered for DF_CACHE_S: they only steer which terms a
        query keeps, and an edit moves them little."""
        now = time.monotonic()
        if now - self._df_time > DF_CACHE_S:
            self._df_cache.clear()
            self._df_time = now
        missing = [t for t in dict.fromkeys(terms) if t not in self._df_cache]
        if missing:
            marks = ",".join("?" * len(missing))
            found = {
                t: int(d)
                for t, d in self.conn.execute(f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", missing)
            }
            for t in missing:
                self._df_cache[t] = found.get(t, 0)
        return {t: self._df_cache[t] for t in terms if self._df_cache[t]}

    def definitions(self, names: Sequence[str], limit: int = 50) -> list[tuple[str, int]]:
        """(name, chunk id) of definitions of these names."""
        if not names:
            return []
        marks = ",".join("?" * len(names))
        return [
            (r[0], int(r[1]))
            for r in self.conn.execute(
                f"SELECT name, chunk_id FROM symbols WHERE kind = 'def' AND chunk_id IS NOT NULL AND name IN ({marks}) "
                "LIMIT ?",
                [*names, limit],
            )
        ]

    def signatures(self) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids (n,) int64, signatures (n, 48) uint8), ordered by chunk id."""
        rows = self.conn.execute("SELECT chunk_id, sig FROM vectors ORDER BY chunk_id").fetchall()
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        sigs = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(len(rows), SIGNATURE_BYTES)
        return ids, sigs

    def int8_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids found, (k, 384) int8, (k,) scales)."""
        if not len(ids):
            return np.zeros(0, np.int64), np.zeros((0, DIM), np.int8), np.zeros(0, np.float32)
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"SELECT chunk_id, q8, scale FROM vectors WHERE chunk_id IN ({marks})", [int(i) for i in ids]
        ).fetchall()
        found = np.array([r[0] for r in rows], np.int64)
        q8 = np.frombuffer(b"".join(r[1] for r in rows), np.int8).reshape(len(rows), DIM)
        return found, q8, np.array([r[2] for r in rows], np.float32)

    def size_bytes(self) -> int:
        return sum(os.path.getsize(f"{self.path}{s}") for s in ("", "-wal") if os.path.exists(f"{self.path}{s}"))


def _chunk_at(starts: list[tuple[int, int, int]], line: int) -> int | None:
    """The innermost chunk holding the line (chunks do not overlap)."""
    for a, b, cid in starts:
        if a <= line <= b:
            return cid
    return None
