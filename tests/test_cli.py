"""The command line, run as a user would."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest


def test_bench_kernels_quick_prints_json_report() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pyserver", "bench", "kernels", "--quick", "--threads", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    report = json.loads(out)
    assert report["machine"]["read_bandwidth_gbs"]["1"] > 0
    fmts = {r["fmt"] for r in report["gemv"]}
    # every packing with a SIMD GEMV: the file packings and the layouts models are repacked into
    assert fmts == {"TQ2_0", "TQ1_0", "I2_S", "I2_S4", "I2_R16", "I2_R16_G64", "I2_R16_G128", "I2_R16_G256"}
    for r in report["gemv"]:
        assert r["shape"] == [2560, 2560] and r["median_us"] > 0
        # effective bandwidth is bytes / time: recompute it from the row
        assert abs(r["weight_gbs"] - r["bytes"] / (r["median_us"] * 1e-6) / 1e9) < 0.02 * r["weight_gbs"] + 0.01
    for r in report["gemm"]:
        assert r["batch"] == 128 and r["tmacs"] > 0
    assert set(report["summary"]) == fmts


def test_unknown_command_exits_nonzero() -> None:
    proc = subprocess.run([sys.executable, "-m", "pyserver", "bench", "nothing"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_bench_model_tiny_reports_consistent_figures() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pyserver", "bench", "model", "--shape", "tiny", "--quick", "--threads", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    report = json.loads(out)
    assert report["bytes_read_per_token"] == report["weight_bytes"] + report["head_bytes"]
    (run,) = report["runs"]
    assert run["prefill_tokens_per_s"] > 0 and run["decode_tokens_per_s"] > 0
    implied = report["bytes_read_per_token"] * run["decode_tokens_per_s"] / (run["measured_read_gbs"] * 1e9)
    assert abs(implied - run["roofline_fraction"]) < 0.01 + 0.05 * implied


def test_generate_streams_text_and_summary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from tests.support.builders import random_model, write_gguf

    path = write_gguf(random_model(np.random.default_rng(0), "bitnet", "TQ2_0", n_layer=1), tmp_path / "m.gguf")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyserver",
            "generate",
            str(path),
            "--prompt",
            "def f(x):",
            "--max-tokens",
            "8",
            "--threads",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("def f(x):")
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    assert summary["generated_tokens"] + (summary["stop_reason"] == "eos") >= 1
    assert summary["decode_tokens_per_s"] >= 0


def test_generate_bad_model_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    proc = subprocess.run([sys.executable, "-m", "pyserver", "generate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "bad.gguf" in proc.stderr and "Traceback" not in proc.stderr


def test_human_output_by_default_json_on_request() -> None:
    text = subprocess.run([sys.executable, "-m", "pyserver", "cpu"], capture_output=True, text=True, check=True).stdout
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "pyserver", "cpu", "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert f"auto: {data['auto']}" in text.splitlines()  # the same facts, as `key: value` lines
    version = subprocess.run([sys.executable, "-m", "pyserver", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("ryzanstein ")


def test_render_by_hand() -> None:
    from pyserver.render import as_markdown, as_text

    report = {"model": {"found": True, "params": 5_000_000, "languages": ["python"]}, "hits": [{"a": 1}], "note": None}
    assert as_text(report) == "model:\n  found: yes\n  params: 5000000\n  languages: python\nhits:\n  - a: 1\nnote: -"
    md = as_markdown("Doctor", report)
    assert md.startswith("# Doctor\n\n## Model\n\n- **found**: yes\n- **params**: 5000000\n- **languages**: `python`")


def test_model_dir_variable_comes_first(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The VSIX carries the shipped model once beside its wheels and names the folder in RYZANSTEIN_MODEL_DIR."""
    from pyserver.models import SHIPPED_MODEL_NAME, default_model_path

    (tmp_path / SHIPPED_MODEL_NAME).write_bytes(b"GGUF")
    monkeypatch.setenv("RYZANSTEIN_MODEL_DIR", str(tmp_path))
    assert default_model_path() == tmp_path / SHIPPED_MODEL_NAME
    monkeypatch.setenv("RYZANSTEIN_MODEL_DIR", str(tmp_path / "empty"))
    found = default_model_path()
    assert found is not None and found != tmp_path / SHIPPED_MODEL_NAME  # falls back to the checkout's copy


def _bench(args: list[str], cache: object, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`python -m pyserver bench ...` with the files it makes (qwen3_file's cache) in a temporary folder."""
    import os

    env = os.environ | {"XDG_CACHE_HOME": str(cache)}
    cmd = [sys.executable, "-m", "pyserver", "bench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed (the `peers` extra)"
)


@needs_llama_cpp
def test_bench_peers_qwen3_runs_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = _bench(
        ["peers", "--arch", "qwen3", "--shape", "qwen3-tiny", "--quick", "--threads", "1", "--pp", "16", "--tg", "4"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert (r["arch"], r["shape"], r["pp"], r["tg"], r["reps"]) == ("qwen3", "qwen3-tiny", 16, 4, 1)
    assert r["cpu"] and r["isa_auto"] and r["llama_cpp"]["package"].startswith("llama-cpp-python")
    assert {res["variant"] for res in r["results"]} == {"tq2_0", "q2_0"}
    rows = r["against_faster_llama_cpp"]["ours"]
    assert {(row["file"], row["isa"]) for row in rows} == {(v, i) for v in ("tq2_0", "q2_0") for i in r["isas_timed"]}
    assert all(row["threads"] == 1 and row["bytes_per_token"] > 0 for row in rows)


def test_bench_peers_qwen3_refuses_a_bitnet_shape(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = _bench(["peers", "--arch", "qwen3", "--shape", "2b4t"], tmp_path)
    if importlib.util.find_spec("llama_cpp") is None:
        assert "llama-cpp-python" in proc.stderr
    else:
        assert proc.returncode == 1 and "bonsai-1.7b" in proc.stderr and "Traceback" not in proc.stderr


@needs_llama_cpp
def test_bench_agreement_prints_its_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = ["agreement", "--shape", "qwen3-tiny", "--variant", "q2_0", "--positions", "16", "--threads", "1"]
    proc = _bench(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["shape"] == "qwen3-tiny" and r["positions"] == 16
    assert {(row["variant"], row["outliers"]) for row in r["results"]} == {("q2_0", False), ("q2_0", True)}


def test_bench_model_bonsai_builds_the_real_layout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A Qwen3 shape gets group-scaled weights and a ternary head: what a decode step reads is every projection and
    the head in I2_R16_G64, computed here from the shape alone."""
    from pyserver import native
    from pyserver.bench.peer_files import QWEN3_SHAPES

    proc = _bench(["model", "--shape", "qwen3-tiny", "--quick", "--threads", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    cfg = QWEN3_SHAPES["qwen3-tiny"]
    weights = cfg.n_layer * sum(native.packed_nbytes("I2_R16_G64", *rc) for rc in cfg.linear_shapes().values())
    assert (r["arch"], r["weight_bytes"]) == ("qwen3", weights)
    assert r["head_bytes"] == native.packed_nbytes("I2_R16_G64", cfg.vocab, cfg.n_embd)
