"""PyTorch's logits for a shipped GGUF, computed from the file itself in float32 on the CPU: the reference the
engine is tested against (tests/engine/test_shipped_model.py).

    python -m models.train.reference models/ryzanstein-code.gguf     # rewrites models/ryzanstein-code.reference.npz

The file stores each projection as ternary codes and a scale s. Loaded as latent weights codes * s / f, where f is
the share of non-zero codes, BitLinear's absmean rule gives back exactly those codes (|codes / f| >= 1 rounds and
clamps to +-1) and that scale (mean |codes * s / f| = s), so this is the training graph's own forward pass on the
weights that ship, whatever machine or precision the export ran with.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize

from models.train.bitnet_torch import BitnetConfig, BitnetLM
from pyserver.engine.config import LINEAR_NAMES as PROJECTIONS
from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.gguf_loader import gguf_config

NORMS = ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm")


def model_from_gguf(path: Path) -> BitnetLM:
    r = GGUFReader(str(path))
    tensors = {t.name: t for t in r.tensors}

    def array(name: str) -> np.ndarray:
        t = tensors[name]
        shape = [int(x) for x in reversed(t.shape)]
        return np.asarray(dequantize(np.asarray(t.data), t.tensor_type), dtype=np.float32).reshape(shape)

    model = BitnetLM(BitnetConfig.of(gguf_config(GGUFFile(path))))
    array_ = array

    def array(name: str) -> np.ndarray:  # writable copies for torch
        return np.array(array_(name))

    with torch.no_grad():
        model.token_embd.weight.copy_(torch.from_numpy(array("token_embd.weight")))
        model.output_norm.weight.copy_(torch.from_numpy(array("output_norm.weight")))
        for i, blk in enumerate(model.blocks):
            for norm in NORMS:
                getattr(blk, norm).weight.copy_(torch.from_numpy(array(f"blk.{i}.{norm}.weight")))
            for proj in PROJECTIONS:
                codes = array(f"blk.{i}.{proj}.weight")
                scale = float(array(f"blk.{i}.{proj}.scale").reshape(-1)[0])
                share = float(np.abs(codes).mean()) or 1.0
                getattr(blk, proj).weight.copy_(torch.from_numpy(codes * (scale / share)))
    return model.eval()


def reference_logits(path: Path, tokens: list[int], dtype: torch.dtype = torch.float32) -> np.ndarray:
    model = model_from_gguf(path).to(dtype)
    model.rope_cos, model.rope_sin = model.rope_cos.to(dtype), model.rope_sin.to(dtype)
    with torch.no_grad():
        return model(torch.tensor([tokens]))[0].numpy().astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf", type=Path)
    ap.add_argument(
        "--tokens-from",
        type=Path,
        default=None,
        help="an existing .reference.npz whose tokens to reuse (default: the one beside the GGUF)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = args.gguf.with_suffix(".reference.npz")
    tokens = [int(t) for t in np.load(args.tokens_from or out)["tokens"]]
    logits = reference_logits(args.gguf, tokens)
    # The same forward in float64: how far rounding alone moves the logits (int8 activations amplify float32's
    # rounding differences: a value on a rounding tie flips a step), the yardstick for the engine's agreement.
    logits64 = reference_logits(args.gguf, tokens, torch.float64)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez_compressed(tmp, tokens=np.asarray(tokens, np.int32), logits=logits, logits_f64=logits64)
    tmp.replace(out)
    print(f"{out}: {len(tokens)} tokens, logits {logits.shape}")


if __name__ == "__main__":
    main()
