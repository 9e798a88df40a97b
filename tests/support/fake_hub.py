"""A Hugging Face hub on 127.0.0.1, serving what huggingface_hub (2.x) asks of the real one when it downloads:

- GET /api/models/{repo}/revision/{rev}[?blobs=true]: the commit and the file list (sizes, LFS SHA-256);
- HEAD and GET /{repo}/resolve/{rev}/{file}: X-Repo-Commit, ETag (the LFS SHA-256, or a git-blob-like id for small
  files), Content-Length, Accept-Ranges, and Range requests answered with 206 + Content-Range.

Faults on demand: `cut_after[file] = n` closes the connection after n bytes of the next GET of that file (once);
`serve_instead[file] = data` serves other bytes than the listing describes (a corrupt transfer); `status` answers
every request with that HTTP status; `ignore_range` answers Range requests with the whole file."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes]


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    serve_instead: dict[str, bytes] = field(default_factory=dict)
    status: int | None = None
    ignore_range: bool = False  # a proxy or mirror that always sends the whole file
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def add(self, repo: str, files: dict[str, bytes], commit: str | None = None) -> Repo:
        h = hashlib.sha1(repo.encode())
        for name in sorted(files):
            h.update(name.encode() + hashlib.sha256(files[name]).digest())
        commit = commit or h.hexdigest()
        self.repos[repo] = Repo(commit, dict(files))
        return self.repos[repo]

    def gets(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + name)]

    def start(self) -> tuple[ThreadingHTTPServer, threading.Thread]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
                self.answer(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self.answer(head=False)

            def send(
                self, code: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False
            ) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def answer(self, head: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(
                    Request(self.command, path, self.headers.get("Range"), self.headers.get("Authorization"))
                )
                if hub.status is not None:
                    self.send(
                        hub.status,
                        b'{"error": "fault"}',
                        {"X-Error-Code": "GatedRepo" if hub.status in (401, 403) else "Fault"},
                        head,
                    )
                    return
                if path.startswith("/api/models/"):
                    self.api(path[len("/api/models/") :], head)
                elif "/resolve/" in path:
                    self.resolve(path, head)
                else:
                    self.send(404, b"not found", head=head)

            def find(self, repo_id: str, rev: str) -> Repo | None:
                repo = hub.repos.get(repo_id)
                if repo is None or rev not in ("main", repo.commit):
                    self.send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                    return None
                return repo

            def api(self, rest: str, head: bool) -> None:
                repo_id, _, rev = rest.partition("/revision/")
                repo = self.find(repo_id, rev or "main")
                if repo is None:
                    return
                siblings = []
                for name, data in repo.files.items():
                    s: dict[str, object] = {
                        "rfilename": name,
                        "size": len(data),
                        "blobId": hashlib.sha1(data).hexdigest(),
                    }
                    if name.endswith(LFS_SUFFIXES):
                        s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    siblings.append(s)
                body = json.dumps(
                    {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False, "siblings": siblings}
                ).encode()
                self.send(200, body, {"Content-Type": "application/json"}, head)

            def resolve(self, path: str, head: bool) -> None:
                repo_id, _, rest = path.lstrip("/").partition("/resolve/")
                rev, _, name = rest.partition("/")
                repo = self.find(repo_id, rev)
                if repo is None:
                    return
                if name not in repo.files:
                    self.send(
                        404, b"entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}, head
                    )
                    return
                listed = repo.files[name]
                data = hub.serve_instead.get(name, listed)
                etag = (
                    hashlib.sha256(listed).hexdigest()
                    if name.endswith(LFS_SUFFIXES)
                    else hashlib.sha1(listed).hexdigest()
                )
                headers = {
                    "X-Repo-Commit": repo.commit,
                    "ETag": f'"{etag}"',
                    "Accept-Ranges": "bytes",
                    "Content-Type": "application/octet-stream",
                }
                start, code = 0, 200
                rng = self.headers.get("Range")
                if rng and not head and not hub.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                        return
                    code = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                cut = None if head else hub.cut_after.pop(name, None)
                if cut is None:
                    self.send(code, body, headers, head)
                    return
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-file
                self.close_connection = True

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        t = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="fake-hub", daemon=True)
        t.start()
        return httpd, t
