"""What leaves the machine for the remote tier: secrets are redacted from the prompt and the suffix (checked on
the bytes a real HTTP server received), and the answer is read from its server-sent events."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pyserver.completion.context_ring import ContextRing
from pyserver.tiers.remote import RemoteConfig, RemoteEngine

AWS = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def server() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ("return ", "1"):
                self.wfile.write(b"data: " + json.dumps({"choices": [{"text": piece}]}).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()


def test_secrets_never_reach_the_remote_server(server: tuple[str, list[bytes]]) -> None:
    url, received = server
    engine = RemoteEngine(RemoteConfig(url, model="m", fim=True))
    prompt = f'AWS_ACCESS_KEY_ID = "{AWS}"\n\n\ndef f():\n    '
    suffix = '\n\npassword = "hunter2-but-longer"\n'
    assert engine.write(prompt, suffix, 8, ["\n"], lambda: False) == "return 1"
    (body,) = received
    sent = json.loads(body)
    assert AWS not in body.decode() and "hunter2" not in body.decode()
    assert "«redacted:aws-access-key»" in sent["prompt"] and "«redacted:" in sent["suffix"]
    assert sent["model"] == "m" and sent["stream"] is True and sent["stop"] == ["\n"]


def test_without_fim_the_suffix_is_not_sent(server: tuple[str, list[bytes]]) -> None:
    url, received = server
    RemoteEngine(RemoteConfig(url, model="m")).write("x = ", "\nprint(x)\n", 8, [], lambda: False)
    assert "suffix" not in json.loads(received[0])


def test_prompt_context_from_open_documents_is_redacted() -> None:
    ring = ContextRing()
    ring.add("file:///a/settings.py", f'import boto3\n\nKEY = "{AWS}"\nclient = boto3.client("s3")\n')
    (chunk,) = ring.pick("file:///a/other.py", "client = boto3.client", 10_000)
    assert AWS not in chunk.text and "«redacted:aws-access-key»" in chunk.text


def test_an_uncertain_completion_escalates_to_a_remote_that_fills_the_middle(server: tuple[str, list[bytes]]) -> None:
    from pyserver.completion.pipeline import Completion
    from pyserver.server.settings import ServerSettings
    from pyserver.server.tier_host import TierHost

    url, received = server
    tiers = TierHost()
    settings = ServerSettings(remote_url=url, remote_model="m", remote_fim=True)
    tiers.configure(None, settings)
    text = "def f():\n    \n"
    sure = Completion("pass", 1.0, mean_entropy=0.1)
    assert tiers.escalate(sure, "file:///a.py", text, 13, lambda: False, settings) is None and not received
    unsure = Completion("pass", 1.0, mean_entropy=9.0)
    better = tiers.escalate(unsure, "file:///a.py", text, 13, lambda: False, settings)
    assert better is not None and better.text == "return 1" and tiers.escalations == 1
    sent = json.loads(received[0])
    assert sent["prompt"] == "def f():\n    " and sent["suffix"] == "\n" and sent["stop"] == ["\n\n\n"]
    tiers.configure(None, ServerSettings(remote_url=url, remote_model="m"))  # no FIM: completions stay local
    assert tiers.escalate(unsure, "file:///a.py", text, 13, lambda: False, settings) is None and len(received) == 1
