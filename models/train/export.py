"""Writes the trained model as a llama.cpp `bitnet` GGUF with the `gguf` package, plus PyTorch reference logits.

    python -m models.train.export --ckpt build/train/checkpoint.pt --out build/train/ryzanstein-code.gguf

Projections are TQ2_0 with unit block scales and the exact fp32 absmean scale in the optional per-projection
`.scale` tensor (llama.cpp multiplies by it), so the file reproduces the PyTorch quantized forward pass exactly.
The tokenizer goes in as `gpt2` BPE with pre-tokenizer `llama-bpe` (models/train/tokenizer.py), the FIM ids as
llama.cpp's keys, and two keys of ours: `ryzanstein.fim.orders` (the FIM orders the model was trained on, e.g.
["psm", "spm"]) and `ryzanstein.languages`.
Alongside: `<out>.reference.npz`, the PyTorch logits for the start of a held-out file (validation split), which the
tests compare the engine against (without needing torch). Both files are written to a temporary name and renamed,
so a reader (or a kill) never sees half a file.

"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf.constants import GGMLQuantizationType

from models.train import tokenizer as T
from models.train.bitnet_torch import BitnetConfig, BitnetLM, ternarize
from models.train.reference import reference_logits
from pyserver.engine.config import LINEAR_NAMES as PROJECTIONS
from pyserver.engine.gguf_writing import add_hparams

REFERENCE_TOKENS = 64
FIM_ORDERS = ("psm", "spm")
LANGUAGES = ("python",)


def reference_tokens(corpus: Path) -> list[int]:
    """The start of the first validation file of at least REFERENCE_TOKENS tokens."""
    from models.train.data import load_split

    valid = load_split(corpus, "valid")
    for a, b in zip(valid.starts, valid.ends):
        if b - a > REFERENCE_TOKENS:
            return [int(t) for t in valid.stream[a : a + REFERENCE_TOKENS]]
    raise ValueError("no validation file is long enough")


def load_model(ckpt: Path) -> tuple[BitnetLM, dict]:
    state = torch.load(ckpt, weights_only=False, map_location="cpu")
    model = BitnetLM(BitnetConfig(**state["config"]))
    model.load_state_dict(state["model"])
    model.eval()
    return model, state


def export(ckpt: Path, tok_path: Path, out: Path, name: str, corpus: Path) -> dict[str, object]:
    model, state = load_model(ckpt)
    cfg = model.cfg
    tok = T.load(tok_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "bitnet")
    w.add_name(name)
    add_hparams(w, cfg.model_config())
    w.add_file_type(gguf.LlamaFileType.MOSTLY_TQ2_0)
    if T.add_gguf_metadata(w, tok) != cfg.vocab:
        raise ValueError("the tokenizer does not match the model's vocabulary")
    w.add_array("ryzanstein.fim.orders", list(FIM_ORDERS))
    w.add_array("ryzanstein.languages", list(LANGUAGES))
    w.add_uint32("ryzanstein.train.steps", int(state["step"]))

    f32 = lambda t: t.detach().float().numpy().astype(np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", f32(model.token_embd.weight).astype(np.float16))
    w.add_tensor("output_norm.weight", f32(model.output_norm.weight))
    for i, blk in enumerate(model.blocks):
        for norm in ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"):
            w.add_tensor(f"blk.{i}.{norm}.weight", f32(getattr(blk, norm).weight))
        for proj in PROJECTIONS:
            codes, scale = ternarize(getattr(blk, proj).weight.detach().float())
            packed = gguf.quants.quantize(codes.numpy().astype(np.float32), GGMLQuantizationType.TQ2_0)  # d = 1
            w.add_tensor(f"blk.{i}.{proj}.weight", packed, raw_dtype=GGMLQuantizationType.TQ2_0)
            w.add_tensor(f"blk.{i}.{proj}.scale", np.array([scale.item()], np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, out)

    # Reference logits: PyTorch's quantized forward on the start of a held-out file, computed from the file just
    # written, on the CPU in float32 and float64 (models/train/reference.py).
    ref = reference_tokens(corpus)
    logits = reference_logits(out, ref)
    logits64 = reference_logits(out, ref, torch.float64)
    ref_path = out.with_suffix(".reference.npz")
    tmp_ref = ref_path.with_name(ref_path.stem + ".tmp.npz")
    np.savez_compressed(tmp_ref, tokens=np.asarray(ref, np.int32), logits=logits, logits_f64=logits64)
    os.replace(tmp_ref, ref_path)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "step": state["step"],
        "train_seconds": state.get("elapsed"),
        "config": state["config"],
        "bytes": out.stat().st_size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=Path("build/train/checkpoint.pt"))
    ap.add_argument("--tokenizer", type=Path, default=None, help="default: tokenizer.json beside the checkpoint")
    ap.add_argument("--corpus", type=Path, default=Path("build/corpus"), help="for the held-out reference text")
    ap.add_argument("--out", type=Path, default=Path("models/ryzanstein-code.gguf"))
    ap.add_argument("--name", default="ryzanstein-code")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    info = export(args.ckpt, args.tokenizer or args.ckpt.parent / "tokenizer.json", args.out, args.name, args.corpus)
    print(
        json.dumps(info if not args.quiet else {"event": "exported", "step": info["step"], "bytes": info["bytes"]}),
        flush=True,
    )


if __name__ == "__main__":
    main()
