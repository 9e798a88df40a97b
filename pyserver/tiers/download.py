"""Downloads on explicit request only (never by default): HTTP(S) with resume, SHA-256 verification, atomic rename,
progress. The data goes to NAME.part; a cut connection resumes from where it stopped (Range request); the file gets
its real name only once complete and verified, so a partial or corrupt file is never used."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pyserver.tiers.registry import ModelSpec

CHUNK = 1 << 20
RETRIES = 5
TIMEOUT_S = 30


class DownloadError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None,
             progress: Callable[[int, int | None], None] = lambda done, total: None,
             cancelled: Callable[[], bool] = lambda: False, retries: int = RETRIES) -> Path:
    """Fetches url to dest. Resumes dest.part after a cut; verifies sha256 (when given) before the rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                if have and resp.status != 206:  # the server ignored the range: start again
                    have = 0
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length is not None else None
                with part.open("ab" if have else "wb") as out:
                    done = have
                    while True:
                        if cancelled():
                            raise DownloadError(f"download of {url} cancelled ({done} bytes kept for resuming)")
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        out.write(block)
                        done += len(block)
                        progress(done, total)
                if total is not None and done < total:
                    raise ConnectionError(f"connection closed at {done} of {total} bytes")
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # nothing left to fetch: the part file is complete
                break
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (ConnectionError, TimeoutError, urllib.error.URLError, OSError) as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(f"{url}: {exc} (after {retries} retries; {part} kept for resuming)") from exc
            time.sleep(min(2.0, 0.1 * 2 ** attempt))
    if sha256 is not None:
        got = _sha256(part)
        if got != sha256.lower():
            part.unlink()
            raise DownloadError(f"{url}: checksum mismatch (expected {sha256}, got {got}); the file was deleted")
    os.replace(part, dest)
    return dest


def hf_url(repo: str, file: str) -> str:
    return f"https://huggingface.co/{repo}/resolve/main/{file}"


def download_model(spec: ModelSpec, dest_root: Path,
                   progress: Callable[[str, int, int | None], None] = lambda f, d, t: None) -> Path:
    """A registry model into dest_root/<id>/: a GGUF file, or a checkpoint folder (config, tokenizer and the
    safetensors shards its index names)."""
    import json

    folder = dest_root / spec.id
    if spec.repo is None:
        raise DownloadError(f"{spec.id} is not published anywhere to download from")
    if spec.format == "gguf":
        name = spec.files[0]
        return download(spec.url or hf_url(spec.repo, name), folder / name,
                        progress=lambda d, t: progress(name, d, t))
    for name in ("config.json", "tokenizer.json"):
        download(hf_url(spec.repo, name), folder / name, progress=lambda d, t, n=name: progress(n, d, t))
    try:
        index = download(hf_url(spec.repo, "model.safetensors.index.json"), folder / "model.safetensors.index.json")
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except DownloadError:
        shards = ["model.safetensors"]  # a single-file checkpoint
    for name in shards:
        download(hf_url(spec.repo, name), folder / name, progress=lambda d, t, n=name: progress(n, d, t))
    return folder


