"""`python -m pyserver inspect` and `inspect-index`, run as a user would: JSON on stdout, the page in a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from pyserver.models import default_model_path
from tests.inspect.test_index_report import make_index


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyserver", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_inspect_the_shipped_model(tmp_path: Path) -> None:
    model = default_model_path()
    assert model is not None
    out = tmp_path / "report.html"
    proc = run("inspect", str(model), "--json", "--out", str(out), "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["config"]["n_layer"] == len(report["layers"]) == 8
    assert len(report["tensors"]) == 8 * 7 and report["totals"]["weights"] == 25_165_824
    assert report["vocabulary"]["tokens"] == 8192
    html = out.read_text(encoding="utf-8")
    assert html.count("<svg") == len(report["figures"]) and "http:" not in html and "https:" not in html


def test_inspect_text_summary_writes_the_page_here(tmp_path: Path) -> None:
    model = default_model_path()
    assert model is not None
    proc = run("inspect", str(model), "--no-vocabulary", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "near duplicate pairs" in proc.stdout and "diversity per layer" in proc.stdout
    assert (tmp_path / f"{model.name}.inspect.html").is_file()


def test_inspect_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 10)
    proc = run("inspect", str(bad), "--json")
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "bad.gguf" in proc.stderr


def test_inspect_index(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    db = tmp_path / "ws.sqlite"
    make_index(db, np.random.default_rng(3), n_extra=200)
    proc = run("inspect-index", str(ws), "--db", str(db), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["root"] == str(ws.resolve()) and report["counts"]["vectors"] == 214
    proc = run("inspect-index", str(db), "--out", str(tmp_path / "i.html"))
    assert proc.returncode == 0 and (tmp_path / "i.html").read_text().count("<svg") >= 5
    proc = run("inspect-index", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "no index" in proc.stderr
