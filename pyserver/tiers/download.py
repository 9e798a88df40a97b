"""Downloads of registry models, on explicit request only (never by default), through `huggingface_hub`.

The files land in the shared Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
`~/.cache/huggingface/hub`) in its usual layout (blobs/<etag>, snapshots/<commit>/<file>, refs/<revision>), so
other tools see them and discovery finds them there. `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE` are honoured,
read when each download starts.

Resuming: huggingface_hub (2.x) downloads each file into a temporary name unique to the process and deletes it when
the download stops, so a cancelled download would start over. Each file's bytes are therefore fetched here into
`blobs/<etag>.incomplete` with the library's own `http_get` (its retries, Range requests, proxies and headers); a
cut connection is resumed by `http_get` itself, a cancelled or killed download by the next call. Only once the file
is complete and verified (size; the hub's LFS SHA-256 and the registry's, where recorded; the GGUF/safetensors
header parses and gives the registry's shape) is it renamed to its blob name; `hf_hub_download` then links it into
the snapshot. A file that fails verification is deleted, and the error says why.

The sidecar calls `download_model` from a worker thread: `progress(done, total)` in bytes over all the model's
files, `cancelled()` polled for every chunk (`CHUNK_BYTES`)."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from pyserver.engine.errors import ModelLoadError
from pyserver.engine.safetensors_loader import hf_config
from pyserver.tiers.discovery import (
    check_safetensors_header,
    hf_hub_cache,
    identify,
    models_folder,
    shape_mismatch,
)
from pyserver.tiers.registry import ModelSpec

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]

# Bytes between progress reports and cancellation checks (huggingface_hub's default, 10 MiB, would leave a cancel
# unanswered for seconds on a slow line).
CHUNK_BYTES = 1 << 20
HASH_BLOCK = 8 << 20
# Small files a checkpoint folder uses when the repository has them (token ids for BOS/EOS).
OPTIONAL_FILES = ("generation_config.json", "tokenizer_config.json")
SETTING = "ryzanstein.modelFolders"


def _umask() -> int:
    """The process umask, read without setting it (another thread may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


class DownloadError(RuntimeError):
    pass


class DownloadCancelled(DownloadError):
    """The download was cancelled; what was fetched is kept and the next call resumes from it."""


class DownloadOffline(DownloadError):
    """No download is possible (offline mode, or the hub cannot be reached); the message says what to place where."""

    def __init__(self, message: str, files: list[str], folder: Path) -> None:
        super().__init__(message)
        self.files = files
        self.folder = folder


@dataclass
class _File:
    name: str
    size: int | None
    sha256: list[str]  # expected digests (the registry's, the hub's LFS oid), all must match


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), read now, not when huggingface_hub was imported. (Had it been set
    then, the library refuses every request: that ends as the same DownloadOffline.)"""
    return _truthy(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))


def endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _storage(repo: str, cache: Path) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return cache / repo_folder_name(repo_id=repo, repo_type="model")


def manual_instructions(spec: ModelSpec) -> tuple[str, list[str]]:
    """What to fetch by hand and where to put it (for offline machines)."""
    base = f"{endpoint()}/{spec.repo}/resolve/{spec.revision}"
    if spec.format == "gguf":
        files = [f"{base}/{f}" for f in spec.files]
        where = (
            f"download {' and '.join(files)} and place it in {models_folder()} or in a folder listed in the "
            f"`{SETTING}` setting (any name: the file is recognised by its header)"
        )
    else:
        files = [f"{base}/{f}" for f in spec.files]
        where = (
            f"download {', '.join(spec.files)} (every *.safetensors shard) from "
            f"{endpoint()}/{spec.repo}/tree/{spec.revision} into one folder, and place that folder in "
            f"{models_folder()} or in a folder listed in the `{SETTING}` setting"
        )
    return where, files


def _offline_error(spec: ModelSpec, reason: str) -> DownloadOffline:
    where, files = manual_instructions(spec)
    return DownloadOffline(
        f"cannot download {spec.id}: {reason}. To install it by hand, {where}.", files, models_folder()
    )


class _Sink:
    """The file object http_get writes into: counts bytes for progress, hashes them, and stops when cancelled."""

    def __init__(
        self, fh: BinaryIO, hasher: hashlib._Hash | None, on_bytes: Callable[[int], None], cancelled: Cancelled
    ) -> None:
        self.fh, self.hasher, self.on_bytes, self.cancelled = fh, hasher, on_bytes, cancelled

    def write(self, data: bytes) -> int:
        if self.cancelled():
            raise DownloadCancelled("download cancelled; what was fetched is kept, the next download resumes it")
        n = self.fh.write(data)
        if self.hasher is not None:
            self.hasher.update(data)
        self.on_bytes(len(data))
        return n

    # http_get rewinds when a server ignores the Range request and sends the whole file again.
    def seek(self, pos: int, whence: int = 0) -> int:
        self.hasher = None  # hashed again from the file at the end
        return self.fh.seek(pos, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def truncate(self, size: int | None = None) -> int:
        self.hasher = None
        self.fh.flush()
        before = os.fstat(self.fh.fileno()).st_size
        out = self.fh.truncate(size)
        self.on_bytes(os.fstat(self.fh.fileno()).st_size - before)  # the progress goes back with the file
        return out

    def flush(self) -> None:
        self.fh.flush()


def _sha256_file(path: Path, hasher: hashlib._Hash | None = None, cancelled: Cancelled | None = None) -> str:
    h = hasher or hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            if cancelled is not None and cancelled():
                raise DownloadCancelled("download cancelled")
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _lock(path: Path, cancelled: Cancelled) -> Iterator[None]:
    """huggingface_hub's lock for this blob (another process, or another window, may be fetching it)."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    while True:
        try:
            lock.acquire(timeout=0.5)
            break
        except Timeout:
            if cancelled():
                raise DownloadCancelled("download cancelled while another process was fetching the same file") from None
    try:
        yield
    finally:
        lock.release()


def _verify_file(spec: ModelSpec, path: Path, name: str) -> None:
    """The header check for one file (on the incomplete file, before it takes its place)."""
    try:
        if name.endswith(".gguf"):
            why = shape_mismatch(identify(path), spec)
            if why:
                raise DownloadError(f"{name} is not {spec.id}: {why}")
        elif name.endswith(".safetensors"):
            check_safetensors_header(path)
        elif name == "config.json":
            try:
                shape = hf_config(json.loads(path.read_text(encoding="utf-8")), path)
            except (ModelLoadError, ValueError, TypeError, AttributeError) as exc:
                raise DownloadError(f"config.json of {spec.id} is not a model configuration: {exc}") from exc
            s = spec.shape
            got = (shape.n_embd, shape.n_ff, shape.n_layer, shape.n_head, shape.n_head_kv, shape.vocab)
            want = (s.n_embd, s.n_ff, s.n_layer, s.n_head, s.n_head_kv, s.vocab)
            if got != want:
                raise DownloadError(
                    f"config.json gives the shape {got} (n_embd, n_ff, n_layer, n_head, "
                    f"n_head_kv, vocab); {spec.id} has {want}"
                )
        elif name.endswith(".json"):
            json.loads(path.read_text(encoding="utf-8"))
    except ModelLoadError as exc:
        raise DownloadError(f"{name} of {spec.id} does not parse: {exc.problem}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise DownloadError(f"{name} of {spec.id} is not valid JSON: {exc}") from exc


def _refuse(path: Path, message: str) -> DownloadError:
    path.unlink(missing_ok=True)
    return DownloadError(f"{message}; the file was deleted, nothing was installed")


def _fetch(
    spec: ModelSpec, f: _File, commit: str, cache: Path, report: Callable[[int], None], cancelled: Cancelled
) -> Path:
    """One file into the cache (resuming what an earlier call left), verified; its snapshot path."""
    from httpx2 import TransportError
    from huggingface_hub import constants, get_hf_file_metadata
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get, repo_folder_name
    from huggingface_hub.utils._headers import build_hf_headers

    assert spec.repo is not None
    storage = _storage(spec.repo, cache)
    pointer = storage / "snapshots" / commit / f.name
    if pointer.is_file() and (f.size is None or pointer.stat().st_size == f.size):
        try:
            _verify_file(spec, pointer, f.name)  # fetched earlier, or by another tool: its header, at least
            report(pointer.stat().st_size)
            return pointer
        except DownloadError:
            _remove([pointer])  # not what it should be: fetched again
    ep = endpoint()
    url = f"{ep}/{spec.repo}/resolve/{quote(commit, safe='')}/{quote(f.name)}"  # as hf_hub_url makes it
    meta = get_hf_file_metadata(url, endpoint=ep)
    if meta.etag is None or meta.commit_hash is None:
        raise DownloadError(
            f"{url}: the server sent no ETag/X-Repo-Commit: is HF_ENDPOINT ({ep}) a Hugging Face hub or mirror?"
        )
    size = meta.size if meta.size is not None else f.size
    if f.size is not None and size != f.size:
        raise DownloadError(f"{f.name}: the hub lists {f.size} bytes but serves {size}")
    blob = storage / "blobs" / meta.etag
    part = blob.with_name(blob.name + ".incomplete")
    headers = build_hf_headers()
    if urlsplit(meta.location).hostname != urlsplit(url).hostname:
        headers.pop("authorization", None)  # a signed CDN address: the token stays with the hub
    # The library reads its chunk size on each call: smaller chunks make cancellation and progress prompt.
    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, CHUNK_BYTES)
    lock = cache / ".locks" / repo_folder_name(repo_id=spec.repo, repo_type="model") / f"{meta.etag}.lock"
    with _lock(lock, cancelled):
        if not blob.is_file():
            blob.parent.mkdir(parents=True, exist_ok=True)
            have = part.stat().st_size if part.is_file() else 0
            if size is not None and have > size:
                part.unlink()
                have = 0
            hasher: hashlib._Hash | None = hashlib.sha256()
            if have:
                _sha256_file(part, hasher, cancelled)
            report(have)
            with part.open("ab") as fh:
                sink = _Sink(fh, hasher, report, cancelled)
                try:
                    http_get(
                        meta.location,
                        sink,  # type: ignore[arg-type]
                        resume_size=have,
                        headers=headers,
                        expected_size=size,
                        displayed_filename=f.name,
                    )
                except DownloadError:
                    raise
                except (HfHubHTTPError, TransportError) as exc:  # http_get has retried (and resumed) already
                    fh.close()
                    kept = part.stat().st_size if part.is_file() else 0
                    raise DownloadError(
                        f"{f.name}: {str(exc).splitlines()[0] or type(exc).__name__}; {kept} of "
                        f"{size} bytes are kept and the next download resumes from there"
                    ) from exc
                except OSError as exc:  # http_get's size check, or the disk
                    fh.close()
                    if size is not None and part.stat().st_size < size:
                        raise DownloadError(f"{f.name}: {exc}; the part fetched is kept for resuming") from exc
                    raise _refuse(part, f"{f.name}: {exc}") from exc
                hasher = sink.hasher
            got_size = part.stat().st_size
            if size is not None and got_size != size:
                raise _refuse(part, f"{f.name}: received {got_size} bytes, expected {size}")
            if f.sha256:
                digest = hasher.hexdigest() if hasher is not None else _sha256_file(part)
                bad = [d for d in f.sha256 if d != digest]
                if bad:
                    raise _refuse(part, f"{f.name}: checksum mismatch (SHA-256 {digest}, expected {bad[0]})")
            try:
                _verify_file(spec, part, f.name)
            except DownloadError as exc:
                raise _refuse(part, str(exc)) from exc
            os.chmod(part, (0o666 & ~_umask()) | stat.S_IRUSR)  # as the library leaves its blobs
            os.replace(part, blob)
        else:
            report(blob.stat().st_size)  # the same content, already here for another revision
    _link(blob, pointer)
    return pointer


def _link(blob: Path, pointer: Path) -> None:
    """snapshots/<commit>/<file> -> ../../blobs/<etag>, as huggingface_hub links them (a copy where the file system
    has no symbolic links), put in place atomically."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), tmp)
    except OSError:
        shutil.copyfile(blob, tmp)
    os.replace(tmp, pointer)


def _plan(spec: ModelSpec, siblings: list[object]) -> list[_File]:
    """The files of the model, with their sizes and checksums from the hub's listing."""
    listed = {s.rfilename: s for s in siblings}  # type: ignore[attr-defined]
    names: list[str] = []
    for pattern in spec.files:
        hits = sorted(n for n in listed if fnmatch.fnmatchcase(n, pattern) and "/" not in n)
        if not hits:
            raise DownloadError(
                f"{spec.repo}@{spec.revision} has no file matching {pattern!r} (the registry "
                f"entry for {spec.id} may be out of date)"
            )
        names += [n for n in hits if n not in names]
    if spec.format == "safetensors":
        names += [n for n in OPTIONAL_FILES if n in listed and n not in names]
    out = []
    for n in names:
        s = listed[n]
        digests = [d for d in (spec.sha256_of(n), getattr(getattr(s, "lfs", None), "sha256", None)) if d]
        out.append(_File(n, getattr(s, "size", None), [d.lower() for d in dict.fromkeys(digests)]))
    return out


def _remove(paths: list[Path]) -> None:
    for p in paths:
        target = p.resolve()
        p.unlink(missing_ok=True)
        if target != p:
            target.unlink(missing_ok=True)


def _unusable(path: Path, spec: ModelSpec) -> str | None:
    """Why the installed model (file or folder) is not the registry's, or None."""
    try:
        return shape_mismatch(identify(path), spec)
    except (ModelLoadError, OSError, ValueError, KeyError) as exc:
        return str(exc)


def installed_path(spec: ModelSpec, cache: Path | None = None) -> Path | None:
    """Where the model is in the Hugging Face cache, complete (the revision's snapshot), or None; no network."""
    if spec.repo is None:
        return None
    storage = _storage(spec.repo, cache or hf_hub_cache())
    ref = storage / "refs" / spec.revision
    try:
        commit = ref.read_text().strip() if ref.is_file() else spec.revision
    except OSError:
        return None
    snap = storage / "snapshots" / commit
    if not snap.is_dir():
        return None
    if spec.format == "gguf":
        path = snap / spec.files[0]
        return path if path.is_file() else None
    present = [p.name for p in snap.iterdir() if p.is_file()]
    if all(any(fnmatch.fnmatchcase(n, pat) for n in present) for pat in spec.files):
        return snap
    return None


def download_model(spec: ModelSpec, progress: Progress | None = None, cancelled: Cancelled | None = None) -> Path:
    """Fetches a registry model into the Hugging Face cache and returns its path there: the GGUF file, or the
    checkpoint folder (config, tokenizer, safetensors shards). Already complete: returns at once (no network when
    offline). Raises DownloadCancelled (resumable), DownloadOffline (with what to place where) or DownloadError."""
    from httpx2 import TransportError
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    report_to = progress or (lambda done, total: None)
    is_cancelled = cancelled or (lambda: False)
    if spec.repo is None:
        raise DownloadError(f"{spec.id} is not published anywhere to download from")
    cache = hf_hub_cache()
    if offline():
        path = installed_path(spec, cache)
        if path is not None and _unusable(path, spec) is None:
            return path
        raise _offline_error(spec, "offline mode is on (HF_HUB_OFFLINE=1)")
    ep = endpoint()
    try:
        info = HfApi(endpoint=ep).model_info(spec.repo, revision=spec.revision, files_metadata=True)
        if not info.sha:
            raise DownloadError(f"{ep}: no commit for {spec.repo}@{spec.revision}")
        files = _plan(spec, list(info.siblings or []))
        total = sum(f.size or 0 for f in files)
        done: dict[str, int] = {}

        def on_bytes(name: str) -> Callable[[int], None]:
            def add(n: int) -> None:
                done[name] = done.get(name, 0) + n
                report_to(sum(done.values()), max(total, sum(done.values())))

            return add

        paths = [_fetch(spec, f, info.sha, cache, on_bytes(f.name), is_cancelled) for f in files]
    except DownloadError:
        raise
    except OfflineModeIsEnabled as exc:
        raise _offline_error(spec, "offline mode is on (HF_HUB_OFFLINE=1)") from exc
    except (GatedRepoError, RepositoryNotFoundError) as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(
            f"{spec.repo} is not available from {ep} (HTTP {status}): it may be gated or private; "
            f"set HF_TOKEN to a token with access"
        ) from exc
    except RevisionNotFoundError as exc:
        raise DownloadError(f"{spec.repo} has no revision {spec.revision!r} on {ep}") from exc
    except HfHubHTTPError as exc:
        raise DownloadError(f"{ep}: {exc}".splitlines()[0]) from exc
    except TransportError as exc:
        raise _offline_error(spec, f"{ep} cannot be reached ({type(exc).__name__}: {exc})") from exc
    storage = _storage(spec.repo, cache)
    if spec.revision != info.sha:  # what other tools read to find this revision without the network
        ref = storage / "refs" / spec.revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(info.sha)
    path = paths[0] if spec.format == "gguf" else storage / "snapshots" / info.sha
    why = _unusable(path, spec)
    if why:
        _remove(paths)
        raise DownloadError(f"{spec.id} downloaded but is not usable ({why}); its files were deleted")
    return path
