"""The index's SQLite file (WAL), through sqlite-utils: files, chunks, symbols, an FTS5 table of split identifiers
and the compressed embeddings. One file is replaced in one transaction, so a killed indexer leaves either the old
rows or the new ones. A file with another schema version, or one that fails SQLite's check, is rebuilt from
scratch, never half-read.

Not thread-safe: each thread that uses the index opens its own `IndexStore` (WAL lets readers run beside the
writer)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from pyserver.index.chunking import Chunk, Symbol
from pyserver.index.embedder import DIM, SIGNATURE_BYTES
from pyserver.index.identifiers import identifier_terms

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
DF_CACHE_S = 60.0


class IndexUnavailable(RuntimeError):
    """The index file cannot be used (held by another process, unwritable); the message says which and why."""


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


def _healthy(conn: sqlite3.Connection) -> bool:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        return False
    return bool(conn.execute("PRAGMA quick_check").fetchone()[0] == "ok")


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


class IndexStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rebuilt = False  # True when an old or damaged file was replaced on open
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = self._open()
        except sqlite3.OperationalError as exc:
            raise IndexUnavailable(f"index {self.path}: {exc}") from exc
        self._df_cache: dict[str, int] = {}
        self._df_time = 0.0

    def _open(self) -> sqlite3.Connection:
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            conn = _connect(self.path)
            try:
                if _healthy(conn):
                    conn.execute("PRAGMA journal_mode = WAL")
                    return conn
            except sqlite3.DatabaseError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    conn.close()
                    raise sqlite3.OperationalError(f"held by another process ({exc})") from exc
            conn.close()
            _remove_database(self.path)
            self.rebuilt = True
        conn = _connect(self.path)
        conn.execute("PRAGMA journal_mode = WAL")
        self._create_schema(sqlite_utils.Database(conn))
        return conn

    @staticmethod
    def _create_schema(db: sqlite_utils.Database) -> None:
        # The version is written last: a file cut off while its schema was being made reads as old and is rebuilt.
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
        db.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(terms, tokenize = 'unicode61')")
        db.execute("CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row')")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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
        c = self.conn
        removed: list[int] = []
        c.execute("BEGIN IMMEDIATE")
        try:
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
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return removed

    def remove_file(self, path: str) -> list[int] | None:
        """The ids of the removed file's chunks, or None when the file was not in the index."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        removed = None
        try:
            row = c.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
            if row is not None:
                removed = self._delete_file_rows(int(row[0]))
                c.execute("DELETE FROM files WHERE id = ?", (int(row[0]),))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
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

    def put_vectors(self, chunk_ids: Sequence[int], sigs: np.ndarray, q8: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Vectors of chunks that still exist (a chunk replaced meanwhile is skipped); returns the positions (into
        chunk_ids) of those written."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
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
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
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
