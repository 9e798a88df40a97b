"""`python -m pyserver bench documents [--mb 20] [--keystrokes 200]`: what a keystroke costs in a large document.

A document of real Python (standard-library modules, repeated to the size asked) is opened in the real sidecar
(`python -m pyserver` over stdio, with the shipped model loaded). Keystrokes are typed near its start, in its
middle and near its end; each is a `textDocument/didChange` inserting one character followed by the inline
completion request an editor sends with it (a document over the completion size cap answers empty at once), and
its cost is the time from sending the change to the completion's answer. In this process, the same edits applied
to the sidecar's LineDocument and to pygls' own TextDocument (which rebuilds the whole text per change) give the
edit alone. Target: under 10 ms a keystroke at 20 MB.
"""

from __future__ import annotations

import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from lsprotocol import types as t
from pygls.workspace import TextDocument

from pyserver.bench.soak import LspPipe
from pyserver.models import default_model_path
from pyserver.server.document_text import LineDocument

TARGET_MS = 10.0
SOURCES = ("textwrap.py", "argparse.py", "dataclasses.py", "inspect.py", "typing.py")
PYGLS_KEYSTROKES = 6  # pygls' TextDocument takes ~0.1 s a change at 20 MB: a few suffice


def document_text(mb: float) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    base = "\n\n".join((stdlib / name).read_text(encoding="utf-8") for name in SOURCES if (stdlib / name).is_file())
    want = int(mb * 2**20)
    return (base * (want // len(base) + 1))[:want]


def _places(text: str) -> dict[str, int]:
    """Where typing happens: a line near the start, the middle line, a line near the end."""
    n = text.count("\n")
    return {"start": 10, "middle": n // 2, "end": n - 10}


def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "max": round(float(a.max()), 3),
    }


def _edit(line: int, column: int, char: str) -> t.TextDocumentContentChangePartial:
    at = t.Position(line=line, character=column)
    return t.TextDocumentContentChangePartial(range=t.Range(start=at, end=at), text=char)


def _in_process(kind: type[TextDocument], text: str, keystrokes: int) -> dict[str, dict[str, float]]:
    doc = kind("file:///bench/large.py", text, version=1)
    out = {}
    for place, line in _places(text).items():
        times = []
        for i in range(keystrokes):
            started = time.perf_counter()
            doc.apply_change(_edit(line, i, "x"))
            times.append(time.perf_counter() - started)
        out[place] = _ms(times)
    return out


def _over_stdio(text: str, keystrokes: int, model: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ryzanstein-bench-docs-") as tmp:
        pipe = LspPipe()
        try:
            pipe.initialize({"modelPath": str(model), "storagePath": str(Path(tmp) / "storage"), "indexEnable": False})
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                state = pipe.request("workspace/executeCommand", {"command": "ryzanstein.sidecar.status"})
                if state.get("result", {}).get("state") in ("ready", "error"):
                    break
                time.sleep(0.1)
            uri = "file:///bench/large.py"
            opened = time.perf_counter()
            item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
            pipe.notify("textDocument/didOpen", {"textDocument": item})
            pipe.request("ryzanstein/ping", None, 120)
            open_s = time.perf_counter() - opened
            version, out = 1, {}
            for place, line in _places(text).items():
                times = []
                for i in range(keystrokes):
                    version += 1
                    at = {"line": line, "character": i}
                    change = {"range": {"start": at, "end": at}, "text": "x"}
                    started = time.perf_counter()
                    pipe.notify(
                        "textDocument/didChange",
                        {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
                    )
                    next_at = {"line": line, "character": i + 1}
                    answer = pipe.request(
                        "textDocument/inlineCompletion",
                        {"textDocument": {"uri": uri}, "position": next_at, "context": {"triggerKind": 2}},
                    )
                    times.append(time.perf_counter() - started)
                    if "result" not in answer:
                        raise RuntimeError(f"the completion failed: {answer}")
                out[place] = _ms(times)
            return {"open_s": round(open_s, 2), "keystroke_ms": out}
        finally:
            pipe.close()


def run_documents_bench(mb: float = 20.0, keystrokes: int = 200, model: Path | None = None) -> dict[str, Any]:
    model = model or default_model_path()
    if model is None:
        raise FileNotFoundError("no model given and no shipped model found in models/")
    text = document_text(mb)
    sidecar = _over_stdio(text, keystrokes, model)
    worst = max(v["p95"] for v in sidecar["keystroke_ms"].values())
    return {
        "document": {"mb": round(len(text.encode("utf-8")) / 2**20, 1), "lines": text.count("\n") + 1},
        "keystrokes_per_place": keystrokes,
        "sidecar": sidecar,
        "edit_only_ms": {
            "line_table": _in_process(LineDocument, text, keystrokes),
            "pygls_text_document": _in_process(TextDocument, text, PYGLS_KEYSTROKES),
        },
        "target_ms": TARGET_MS,
        "targets": {f"sidecar_keystroke_p95_under_{TARGET_MS:g}_ms": worst < TARGET_MS},
    }
