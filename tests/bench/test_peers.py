"""The files `bench peers` times both engines on: the shape they declare, and (where llama-cpp-python is installed)
the same logits from llama.cpp as from this engine, so the two engines compared do the same work."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pyserver.bench.peer_files import quantize_embedding, tensor_types, write_random_gguf
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


def _llama_cpp_logits(path: Path, tokens: list[int]) -> np.ndarray:
    import llama_cpp as L

    from pyserver.bench.peer_llama import quiet

    quiet(L)
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(str(path).encode(), mp)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = 64, 1, 1
    ctx = L.llama_init_from_model(model, cp)
    batch = L.llama_batch_init(len(tokens), 0, 1)
    batch.n_tokens = len(tokens)
    for i, t in enumerate(tokens):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, True
        batch.seq_id[i][0] = 0
    assert L.llama_decode(ctx, batch) == 0
    out = np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(len(tokens), CFG.vocab)).copy()
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
