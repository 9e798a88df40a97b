"""Trains the shipped ternary code model on the CPU (PyTorch from the `train` extra).

    python -m models.train.train --out build/train        # fresh run (about two hours on 2 cores)
    python -m models.train.train --out build/train --resume

Checkpoints every few minutes (model, optimizer, step) so a stopped run resumes where it left off; then
`python -m models.train.export` writes the GGUF that ships in models/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.train.bitnet_torch import BitnetConfig, BitnetLM
from models.train.bpe import VOCAB_SIZE, train_tokenizer
from pyserver.bench.stdlib_corpus import source_files
from models.train.data import IGNORE, Examples
from tokenizers import Tokenizer


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def eval_loss(model: BitnetLM, ex: Examples, n: int = 32) -> float:
    model.eval()
    rng = np.random.default_rng(1234)
    xs, ys = zip(*(ex.plain(rng) for _ in range(n)))
    x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
    loss = F.cross_entropy(model(x).reshape(-1, model.cfg.vocab), y.reshape(-1)).item()
    model.train()
    return loss


def save(path: Path, model: BitnetLM, opt: torch.optim.Optimizer, step: int, args: argparse.Namespace,
         elapsed: float) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": asdict(model.cfg),
                "args": vars(args), "elapsed": elapsed}, tmp)
    os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("build/train"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--embd", type=int, default=256)
    ap.add_argument("--ff", type=int, default=768)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tok_path = args.out / "tokenizer.json"
    ckpt_path = args.out / "checkpoint.pt"
    log = open(args.out / "train.log", "a", buffering=1)
    if args.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        cfg = BitnetConfig(**state["config"])
        tok = Tokenizer.from_file(str(tok_path))
    else:
        state = None
        tok = train_tokenizer(tok_path, VOCAB_SIZE)
        cfg = BitnetConfig(vocab=VOCAB_SIZE, n_embd=args.embd, n_ff=args.ff, n_layer=args.layers, n_head=args.heads,
                           n_head_kv=args.kv_heads, context=args.seq)
    torch.manual_seed(args.seed)
    model = BitnetLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    step, elapsed = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed = int(state["step"]), float(state.get("elapsed", 0.0))
    train = Examples(source_files("train"), tok, args.seq)
    held = Examples(source_files("eval"), tok, args.seq)
    print(json.dumps({"event": "start", "step": step, "params": sum(p.numel() for p in model.parameters()),
                      "train_tokens_in_corpus": train.n_tokens, "config": asdict(cfg)}), file=log)
    last_ckpt = time.time()
    t_run = time.time()
    while step < args.steps:
        x, y = train.batch(args.seed, step, args.batch)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        logits = model(torch.from_numpy(x))
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), torch.from_numpy(y).reshape(-1), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            now = time.time()
            print(json.dumps({"step": step, "loss": round(loss.item(), 4), "lr": g["lr"],
                              "elapsed_s": round(elapsed + now - t_run)}), file=log)
        if step % 500 == 0 or step == args.steps:
            print(json.dumps({"step": step, "eval_loss": round(eval_loss(model, held), 4)}), file=log)
        if time.time() - last_ckpt > args.checkpoint_minutes * 60 or step == args.steps:
            save(ckpt_path, model, opt, step, args, elapsed + time.time() - t_run)
            last_ckpt = time.time()
    print(json.dumps({"event": "done", "step": step, "elapsed_s": round(elapsed + time.time() - t_run)}), file=log)


if __name__ == "__main__":
    main()
