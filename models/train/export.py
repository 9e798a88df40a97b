"""Writes the trained model as a llama.cpp `bitnet` GGUF with the `gguf` package, plus PyTorch reference logits.

    python -m models.train.export --ckpt build/train/checkpoint.pt --out models/ryzanstein-code.gguf

Projections are TQ2_0 with unit block scales and the exact fp32 absmean scale in the optional per-projection
`.scale` tensor (llama.cpp multiplies by it), so the file reproduces the PyTorch quantized forward pass exactly.
Alongside: `<out>.reference.npz`, the PyTorch logits for the start of a held-out file, which the tests compare the
engine against (without needing torch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf.constants import GGMLQuantizationType

from models.train.bitnet_torch import BitnetConfig, BitnetLM, ternarize
from pyserver.bench.stdlib_corpus import source_files
from pyserver.engine.gguf_writing import HParams, add_bpe_tokenizer, add_hparams
from tokenizers import Tokenizer

PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
REFERENCE_TOKENS = 96


def export(ckpt: Path, tok_path: Path, out: Path, name: str) -> dict[str, object]:
    state = torch.load(ckpt, weights_only=False, map_location="cpu")
    cfg = BitnetConfig(**state["config"])
    model = BitnetLM(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    tok = Tokenizer.from_file(str(tok_path))
    w = gguf.GGUFWriter(str(out), "bitnet")
    w.add_name(name)
    add_hparams(w, HParams(context_length=cfg.context, n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_ff=cfg.n_ff,
                           n_head=cfg.n_head, n_head_kv=cfg.n_head_kv, vocab=cfg.vocab, norm_eps=cfg.norm_eps,
                           rope_base=cfg.rope_base))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_TQ2_0)
    if len(add_bpe_tokenizer(w, tok)) != cfg.vocab:
        raise ValueError("the tokenizer does not match the model's vocabulary")

    f32 = lambda t: t.detach().float().numpy().astype(np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", f32(model.token_embd.weight).astype(np.float16))
    w.add_tensor("output_norm.weight", f32(model.output_norm.weight))
    for i, blk in enumerate(model.blocks):
        for norm in ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"):
            w.add_tensor(f"blk.{i}.{norm}.weight", f32(getattr(blk, norm).weight))
        for proj in PROJECTIONS:
            codes, scale = ternarize(getattr(blk, proj).weight.detach().float())
            c = codes.numpy().astype(np.float32)
            packed = gguf.quants.quantize(c, GGMLQuantizationType.TQ2_0)  # values already in {-1, 0, 1}: d = 1
            w.add_tensor(f"blk.{i}.{proj}.weight", packed, raw_dtype=GGMLQuantizationType.TQ2_0)
            w.add_tensor(f"blk.{i}.{proj}.scale", np.array([scale.item()], np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Reference logits: PyTorch's quantized forward on the start of the first held-out file, with the embedding
    # rounded to F16 as the file stores it.
    model.token_embd.weight.data = model.token_embd.weight.data.half().float()
    text = next(f.text for f in source_files("eval") if len(f.text) > 2000)
    ref_tokens = tok.encode(text, add_special_tokens=False).ids[:REFERENCE_TOKENS]
    with torch.no_grad():
        logits = model(torch.tensor([ref_tokens]))[0].numpy().astype(np.float32)
    np.savez_compressed(out.with_suffix(".reference.npz"), tokens=np.asarray(ref_tokens, np.int32), logits=logits)
    return {"params": sum(p.numel() for p in model.parameters()), "step": state["step"],
            "train_seconds": state.get("elapsed"), "config": state["config"], "bytes": out.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=Path("build/train/checkpoint.pt"))
    ap.add_argument("--tokenizer", type=Path, default=None, help="default: tokenizer.json beside the checkpoint")
    ap.add_argument("--out", type=Path, default=Path("models/ryzanstein-code.gguf"))
    ap.add_argument("--name", default="ryzanstein-code")
    args = ap.parse_args()
    info = export(args.ckpt, args.tokenizer or args.ckpt.parent / "tokenizer.json", args.out, args.name)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
