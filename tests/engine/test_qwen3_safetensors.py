"""A Qwen3ForCausalLM checkpoint directory (Hugging Face names, q_norm / k_norm) whose float projections are ternary
times a scale per group, as Ternary-Bonsai's `-unpacked` repositories hold them: found exactly per group, the same
model as the GGUF file it was made from; inexact floats refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from pyserver.bench.peer_files import QWEN3_SHAPES, write_qwen3_f16
from pyserver.engine.errors import ModelLoadError
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.model import Model
from pyserver.engine.tokenizer import Tokenizer
from tests.support.reference_qwen3 import tensor_values

CFG = QWEN3_SHAPES["qwen3-tiny"]
HF = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
}


def checkpoint(gguf_path: Path, d: Path, spoil: bool = False) -> Path:
    g = GGUFFile(gguf_path)
    tensors = {"model.embed_tokens.weight": tensor_values(g, "token_embd.weight").astype(np.float32)}
    tensors["model.norm.weight"] = tensor_values(g, "output_norm.weight").astype(np.float32)
    for i in range(CFG.n_layer):
        for ours, theirs in HF.items():
            tensors[f"model.layers.{i}.{theirs}.weight"] = tensor_values(g, f"blk.{i}.{ours}.weight").astype(np.float32)
    if spoil:
        w = tensors["model.layers.1.mlp.up_proj.weight"]
        w[0, 0] = 0.5 * np.abs(w[0, :64]).max()  # half its group's scale: not -s, 0 or +s
    d.mkdir()
    save_file(tensors, str(d / "model.safetensors"))
    config = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": CFG.n_embd,
        "intermediate_size": CFG.n_ff,
        "num_hidden_layers": CFG.n_layer,
        "num_attention_heads": CFG.n_head,
        "num_key_value_heads": CFG.n_head_kv,
        "head_dim": CFG.head_dim,
        "vocab_size": CFG.vocab,
        "rope_theta": CFG.rope_base,
        "rms_norm_eps": CFG.norm_eps,
        "tie_word_embeddings": True,
        "hidden_act": "silu",
    }
    (d / "config.json").write_text(json.dumps(config))
    Tokenizer.from_gguf_metadata(g.metadata).hf.save(str(d / "tokenizer.json"))
    return d


def test_unpacked_checkpoint_is_the_gguf_model(tmp_path: Path) -> None:
    src = write_qwen3_f16(CFG, tmp_path / "f16.gguf", outliers=True, group=128)
    m = Model.load(checkpoint(src, tmp_path / "ckpt"))
    assert m.config.arch == "qwen3" and m.config.qk_norm and m.config.act_block == 32  # Q2_0 (_act_block)
    assert {s.fmt for s in m.tensor_stats} == {"Q2_0_128"}
    assert m._weights.output_ternary is not None
    tokens = [int(t) for t in np.random.default_rng(1).integers(3, 8000, 48)]
    ours = m.session().append(tokens, n_logits=len(tokens))
    want = Model.load(src).session().append(tokens, n_logits=len(tokens))
    np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-4)


def test_inexact_checkpoint_is_refused(tmp_path: Path) -> None:
    src = write_qwen3_f16(CFG, tmp_path / "f16.gguf")
    with pytest.raises(ModelLoadError, match=r"model\.layers\.1\.mlp\.up_proj\.weight.*not ternary"):
        Model.load(checkpoint(src, tmp_path / "ckpt", spoil=True))
