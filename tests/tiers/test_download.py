"""Downloads against a local HTTP server on 127.0.0.1: resume after a cut connection, checksum mismatch rejected,
no partial file ever under the real name."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pyserver.tiers.download import DownloadError, download

DATA = os.urandom(3 * (1 << 20) + 12345)
SHA = hashlib.sha256(DATA).hexdigest()


class Handler(BaseHTTPRequestHandler):
    cut_after: int | None = None  # close the connection after this many bytes (once)
    ranges_seen: list[str] = []
    honour_range = True

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        start = 0
        rng = self.headers.get("Range")
        Handler.ranges_seen.append(rng or "")
        if rng and Handler.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(DATA):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
        else:
            self.send_response(200)
        body = DATA[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if Handler.cut_after is not None:
            n, Handler.cut_after = Handler.cut_after, None
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-file
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    Handler.cut_after, Handler.ranges_seen, Handler.honour_range = None, [], True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/model.gguf"
    httpd.shutdown()


def test_resumes_after_a_cut_connection(server: str, tmp_path: Path) -> None:
    Handler.cut_after = 1_000_000
    seen: list[int] = []
    dest = download(server, tmp_path / "m.gguf", sha256=SHA, progress=lambda done, total: seen.append(done))
    assert dest.read_bytes() == DATA and not (tmp_path / "m.gguf.part").exists()
    assert Handler.ranges_seen == ["", "bytes=1000000-"]  # the second request asked for the rest only
    assert seen[-1] == len(DATA)


def test_resumes_a_part_file_left_by_an_earlier_run(server: str, tmp_path: Path) -> None:
    (tmp_path / "m.gguf.part").write_bytes(DATA[:2_000_000])
    download(server, tmp_path / "m.gguf", sha256=SHA)
    assert (tmp_path / "m.gguf").read_bytes() == DATA and Handler.ranges_seen == ["bytes=2000000-"]


def test_checksum_mismatch_is_rejected(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(server, tmp_path / "m.gguf", sha256="0" * 64)
    assert not (tmp_path / "m.gguf").exists() and not (tmp_path / "m.gguf.part").exists()


def test_a_server_without_ranges_restarts_cleanly(server: str, tmp_path: Path) -> None:
    Handler.honour_range = False
    (tmp_path / "m.gguf.part").write_bytes(b"stale bytes from another file")
    download(server, tmp_path / "m.gguf", sha256=SHA)
    assert (tmp_path / "m.gguf").read_bytes() == DATA


def test_unreachable_server_keeps_nothing_under_the_real_name(tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        download("http://127.0.0.1:9/none.gguf", tmp_path / "m.gguf", retries=1)
    assert not (tmp_path / "m.gguf").exists()
