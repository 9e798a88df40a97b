"""The files `bench peers` times both engines on: the shape they declare, and (where llama-cpp-python is installed)
the same logits from llama.cpp as from this engine, so the two engines compared do the same work."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyserver import native
from pyserver.bench.peer_files import QWEN3_SHAPES, quantize_embedding, qwen3_file, tensor_types, write_random_gguf
from pyserver.bench.peers import QWEN3_TARGETS, QWEN3_VARIANTS, run_peers_bench
from pyserver.engine.config import ModelConfig
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.gguf_loader import gguf_config
from pyserver.engine.model import Model

CFG = ModelConfig.for_arch("bitnet", n_embd=256, n_ff=512, n_layer=2, n_head=4, n_head_kv=2, vocab=1024)
HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.parametrize("packing", ["TQ2_0", "TQ1_0"])
def test_written_file_has_the_declared_shape(tmp_path: Path, packing: str) -> None:
    path = write_random_gguf(CFG, packing, tmp_path / "m.gguf")
    read = gguf_config(GGUFFile(path))
    assert read.norm_eps == pytest.approx(CFG.norm_eps)  # stored as f32
    assert read.with_(norm_eps=CFG.norm_eps) == CFG
    types = tensor_types(path)
    assert types["attn_q.weight"] == [packing] and types["token_embd.weight"] == ["F16"]
    model = Model.load(path)
    assert model.session().append([5, 6, 7]).shape == (1, CFG.vocab)


def _llama_cpp_logits(path: Path, tokens: list[int], vocab: int = CFG.vocab) -> np.ndarray:
    import llama_cpp as L

    from pyserver.bench.peer_llama import quiet

    quiet(L)
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(str(path).encode(), mp)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = 64, 1, 1
    cp.n_batch = cp.n_ubatch = 64
    ctx = L.llama_init_from_model(model, cp)
    batch = L.llama_batch_init(len(tokens), 0, 1)
    batch.n_tokens = len(tokens)
    for i, t in enumerate(tokens):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, True
        batch.seq_id[i][0] = 0
    assert L.llama_decode(ctx, batch) == 0
    out = np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(len(tokens), vocab)).copy()
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return out


@pytest.mark.skipif(not HAVE_LLAMA_CPP, reason="llama-cpp-python not installed (the optional `peers` extra)")
@pytest.mark.parametrize(("packing", "embedding"), [("TQ2_0", "F16"), ("TQ1_0", "Q6_K")])
def test_both_engines_compute_the_same_model(tmp_path: Path, packing: str, embedding: str) -> None:
    path = write_random_gguf(CFG, packing, tmp_path / "m.gguf", seed=3)
    if embedding != "F16":
        path = quantize_embedding(path, tmp_path / "q.gguf", packing, embedding, threads=1)
    tokens = [3, 17, 200, 999, 42, 7, 512, 64]
    ours = Model.load(path, head="f32").session().append(tokens, n_logits=len(tokens))
    theirs = _llama_cpp_logits(path, tokens)
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.999
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.85


# ---- Qwen3 (Ternary-Bonsai) files: bench peers --arch qwen3 ------------------------------------------------------
needs_llama_cpp = pytest.mark.skipif(not HAVE_LLAMA_CPP, reason="llama-cpp-python not installed (the `peers` extra)")


@pytest.fixture(scope="module")
def qwen3_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """qwen3_file's cache in a temporary folder: the qwen3-tiny files (F16 ~7 MB, quantized ~1 MB) made here by
    llama.cpp's quantizer, as `bench peers` makes them."""
    with pytest.MonkeyPatch.context() as mp:
        d = tmp_path_factory.mktemp("cache")
        mp.setenv("XDG_CACHE_HOME", str(d))
        yield d


@needs_llama_cpp
@pytest.mark.parametrize("variant", QWEN3_VARIANTS)
def test_both_engines_compute_the_same_qwen3_model(qwen3_cache: Path, variant: str) -> None:
    """The engines timed against each other compute the same model from the same file: this engine's logits
    (activations per block of 32, group scales repacked) against llama.cpp's own over 48 positions."""
    path = qwen3_file("qwen3-tiny", variant, threads=1)
    assert path.is_relative_to(qwen3_cache)
    vocab = QWEN3_SHAPES["qwen3-tiny"].vocab
    tokens = [int(t) for t in np.random.default_rng(0).integers(0, 8000, 48)]
    ours = Model.load(path).session(64).append(tokens, n_logits=len(tokens))
    assert ours is not None
    theirs = _llama_cpp_logits(path, tokens, vocab)
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.999
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).mean() >= 0.85


@needs_llama_cpp
def test_qwen3_peers_report_is_consistent(qwen3_cache: Path) -> None:
    """bench peers --arch qwen3 on the tiny shape (no timing asserted): both files, every SIMD level, each ratio
    and bandwidth fraction what its own figures give, bytes per token those of the layout each tensor runs in,
    and the targets marked met exactly when reached."""
    r = run_peers_bench("qwen3-tiny", threads=[1], reps=1, pp=16, tg=4, arch="qwen3")
    simd = [i for i in native.available_isas() if i != "scalar"]
    assert r["arch"] == "qwen3" and r["isas_timed"] == simd and r["cpu"] and r["isa_auto"] in simd
    assert r["targets"] == QWEN3_TARGETS
    cfg = QWEN3_SHAPES["qwen3-tiny"]
    assert [res["variant"] for res in r["results"]] == list(QWEN3_VARIANTS)
    faster: dict[str, float] = {"prefill_tps": 0.0, "decode_tps": 0.0}
    for res in r["results"]:
        packing = res["variant"].upper()  # every matrix, the embedding included, quantized by llama.cpp
        assert res["tensor_types"]["attn_q.weight"] == [packing] and res["tensor_types"]["token_embd.weight"] == [
            packing
        ]
        for name, isa in res["isa_of"].items():
            assert name == f"ours_{isa}"
            (layout,) = res["packings"][name]
            assert layout == ("I2_R16_G64" if packing == "Q2_0" else "I2_R16_G256")
            # Independently: each projection and the (tied) head in that layout, from the shape alone.
            shapes = [*cfg.linear_shapes().values()] * cfg.n_layer + [(cfg.vocab, cfg.n_embd)]
            assert res["bytes_per_token"][name] == sum(native.packed_nbytes(layout, r_, c) for r_, c in shapes)
        (run,) = res["runs"]
        assert run["read_bandwidth_gbs"] == max(run["read_bandwidth_probes_gbs"])  # probed before and after
        for metric in faster:
            faster[metric] = max(faster[metric], run["llama_cpp"][metric])
        for name in res["isa_of"]:
            mine = run[name]
            want = res["bytes_per_token"][name] * mine["decode_tps"] / (run["read_bandwidth_gbs"] * 1e9)
            assert mine["decode_bandwidth_fraction"] == pytest.approx(want, rel=0.01, abs=0.002)
            ratio = mine["prefill_tps"] / run["llama_cpp"]["prefill_tps"]
            assert mine["prefill_ratio"] == pytest.approx(ratio, rel=0.005, abs=0.01)  # from rates rounded to 0.1
    summary = r["against_faster_llama_cpp"]
    best = summary["llama_cpp_faster_file"]["1"]
    assert {m: best[m]["tps"] for m in faster} == faster
    assert len(summary["ours"]) == len(QWEN3_VARIANTS) * len(simd)
    for row in summary["ours"]:
        prefill, decode = row["prefill_tps"] / faster["prefill_tps"], row["decode_tps"] / faster["decode_tps"]
        assert row["prefill_vs_faster_llama_cpp"] == pytest.approx(prefill, rel=0.005, abs=0.01)
        assert row["decode_vs_faster_llama_cpp"] == pytest.approx(decode, rel=0.005, abs=0.01)
        assert row["met"] == {
            "decode_bandwidth_fraction": row["decode_bandwidth_fraction"] >= QWEN3_TARGETS["decode_bandwidth_fraction"],
            "decode": row["decode_vs_faster_llama_cpp"] >= QWEN3_TARGETS["decode"],
            "prefill": row["prefill_vs_faster_llama_cpp"] >= QWEN3_TARGETS["prefill"],
        }
