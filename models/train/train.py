"""Trains the shipped ternary code model on the pre-tokenized corpus (`make corpus`), on a CUDA GPU when there is one,
else on the CPU (PyTorch from the `train` extra).

    python -m models.train.train --out build/train --budget-seconds 420     # steps sized to the budget
    python -m models.train.train --out build/train --steps 3000             # a fixed step count
    python -m models.train.train --out build/train --resume                 # continue a stopped run

- CUDA: bf16 autocast, fused AdamW, TF32, optional torch.compile (`--compile`, falls back to eager if it fails).
- `--budget-seconds`: wall-clock budget of the whole run (start-up and compilation included): the step count is
  sized from the throughput of the first steps (after compilation), corrected once at 20% of the run with the
  measured average (evaluations and checkpoints included), and the cosine schedule runs over that count.
- Checkpoints (model, optimizer, step, sized step count) every `--checkpoint-minutes`, replaced atomically;
  `--export-to FILE` also exports the GGUF there in a background process after each checkpoint, so a run killed at
  its time limit still leaves a usable model.
- Batches are a pure function of (seed, step), made ahead by worker processes (`--workers`); a resumed run sees
  the batches it would have seen.
- The log (`train.log`, JSON lines) has loss, learning rate, tokens/s, validation loss, and the FIM middle's loss
  with and without the suffix in both orders (the suffix's value).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.train import data as D
from models.train.bitnet_torch import BitnetConfig, BitnetLM

DEFAULT_CORPUS = Path("build/corpus")

# ---- batches made by worker processes --------------------------------------------------------------------------

_BATCHER: D.Batcher | None = None


def _make(job: tuple[int, int, int]) -> np.ndarray:
    assert _BATCHER is not None
    step, micro, size = job
    return _BATCHER.batch(step, micro, size)


class Batches:
    """Micro-batches in step order, made ahead by a fork pool (made before CUDA starts) or in-process."""

    def __init__(self, batcher: D.Batcher, workers: int) -> None:
        global _BATCHER
        _BATCHER = batcher
        self.workers = workers
        self.pool = mp.get_context("fork").Pool(workers) if workers > 0 else None

    def iterate(self, start: int, accum: int, micro: int, ahead: int = 0):
        """Micro-batches from `start` on; with a pool, at most `ahead` (default 3 per worker) made in advance."""
        jobs = ((s, m, micro) for s in range(start, 1 << 40) for m in range(accum))
        if self.pool is None:
            yield from map(_make, jobs)
            return
        pending: collections.deque = collections.deque()
        for job in jobs:
            pending.append(self.pool.apply_async(_make, (job,)))
            if len(pending) >= (ahead or 3 * self.workers):
                yield pending.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()


# ---- schedule, evaluation, checkpoints ---------------------------------------------------------------------------


def compile_blocks(model: BitnetLM) -> None:
    """Regional compilation: every block compiled in place (state_dict keys unchanged); identical blocks share one
    compiled graph, so compiling takes seconds instead of minutes."""
    for blk in model.blocks:
        blk.compile()


def uncompile_blocks(model: BitnetLM) -> None:
    for blk in model.blocks:
        blk._compiled_call_impl = None


@contextlib.contextmanager
def eager(model: BitnetLM):
    saved = [blk._compiled_call_impl for blk in model.blocks]
    uncompile_blocks(model)
    try:
        yield
    finally:
        for blk, impl in zip(model.blocks, saved):
            blk._compiled_call_impl = impl


def lr_at(step: int, steps: int, peak: float, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


class Evaluator:
    """Fixed validation windows and FIM examples; losses in nats/token."""

    def __init__(self, batcher: D.Batcher, n_plain: int, n_fim: int, seq: int) -> None:
        rng = np.random.default_rng(99)
        self.plain = np.stack([batcher.plain(rng, seq + 1) for _ in range(n_plain)])
        self.fim = []
        for ex in D.fim_eval_examples(batcher, n_fim):
            pre, mid, suf = (
                e.ids for e in batcher.tok.encode_batch([ex.prefix, ex.middle, ex.suffix], add_special_tokens=False)
            )
            row = {}
            for name, spm, s in (
                ("psm", False, suf),
                ("psm_no_suffix", False, []),
                ("spm", True, suf),
                ("spm_no_suffix", True, []),
            ):
                toks = batcher.layout(pre, mid, s, spm, seq + 1)
                n_mid = min(len(mid), (seq + 1) // 2)
                row[name] = (toks, len(toks) - 1 - n_mid, n_mid)  # targets of the middle: toks[a:a + n_mid]
            self.fim.append(row)

    @torch.no_grad()
    def run(self, model: torch.nn.Module, device: torch.device, autocast) -> dict[str, float]:
        model.eval()
        out: dict[str, float] = {}
        losses = []
        for i in range(0, len(self.plain), 8):
            x = torch.from_numpy(self.plain[i : i + 8]).to(device)
            with autocast():
                logits = model(x[:, :-1])
            losses.append(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item())
        out["valid_loss"] = float(np.mean(losses))
        for name in ("psm", "psm_no_suffix", "spm", "spm_no_suffix"):
            rows = [r[name] for r in self.fim]
            nll = n = 0.0
            for i in range(0, len(rows), 16):  # padded at the end: causal attention never sees the padding
                chunk = rows[i : i + 16]
                width = max(len(t) for t, _, _ in chunk)
                x = torch.tensor([t + [t[-1]] * (width - len(t)) for t, _, _ in chunk], device=device)
                with autocast():
                    logits = model(x[:, :-1]).float()
                for j, (_, a, k) in enumerate(chunk):
                    nll += F.cross_entropy(logits[j, a - 1 : a - 1 + k], x[j, a : a + k], reduction="sum").item()
                    n += k
            out[f"fim_middle_{name}"] = nll / max(1.0, n)
        model.train()
        return out


def save(
    path: Path,
    model: BitnetLM,
    opt: torch.optim.Optimizer,
    step: int,
    total_steps: int,
    args: argparse.Namespace,
    elapsed: float,
) -> None:
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {
            "model": state,
            "opt": opt.state_dict(),
            "step": step,
            "total_steps": total_steps,
            "config": asdict(model.cfg),
            "args": {k: str(v) for k, v in vars(args).items()},
            "elapsed": elapsed,
        },
        tmp,
    )
    os.replace(tmp, path)  # a kill mid-write never leaves a broken checkpoint


def start_export(ckpt: Path, out: Path, corpus: Path, log) -> subprocess.Popen | None:
    """Exports the checkpoint's model to the GGUF in a background process (CPU only, a few seconds)."""
    cmd = [
        sys.executable,
        "-m",
        "models.train.export",
        "--ckpt",
        str(ckpt),
        "--out",
        str(out),
        "--corpus",
        str(corpus),
        "--quiet",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"}
    try:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    except OSError as exc:
        print(json.dumps({"event": "export_failed", "error": str(exc)}), file=log, flush=True)
        return None


# ---- main ----------------------------------------------------------------------------------------------------------


def main() -> None:
    t_start = time.time()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("build/train"))
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=0, help="fixed number of optimizer steps (0: size from the budget)")
    ap.add_argument("--budget-seconds", type=float, default=0.0)
    ap.add_argument("--batch-tokens", type=int, default=131072, help="tokens per optimizer step")
    ap.add_argument("--micro-batch", type=int, default=0, help="rows per forward pass (0: 64 on CUDA, 8 on CPU)")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50, help="warm-up steps (at most a tenth of a fixed-step run)")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--embd", type=int, default=512)
    ap.add_argument("--ff", type=int, default=1536)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--fim-rate", type=float, default=0.5)
    ap.add_argument("--spm-rate", type=float, default=0.5, help="share of FIM examples in SPM order")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto | cuda | cpu")
    ap.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="torch.compile the model (falls back to eager if compilation fails)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--workers", type=int, default=-1, help="batch worker processes (-1: cores - 2, at most 12)")
    ap.add_argument("--checkpoint-minutes", type=float, default=2.0)
    ap.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: about 8 per run)")
    ap.add_argument("--eval-windows", type=int, default=64)
    ap.add_argument("--eval-fim", type=int, default=48)
    ap.add_argument("--export-to", type=Path, default=None, help="GGUF to (re)write after every checkpoint")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--log", type=Path, default=None, help="JSON-lines log (default: OUT/train.log)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.out / "checkpoint.pt"
    log = open(args.log or args.out / "train.log", "a", buffering=1)

    def emit(**kw) -> None:
        kw.setdefault("t", round(time.time() - t_start, 1))
        line = json.dumps(kw)
        print(line, file=log, flush=True)
        print(line, flush=True)

    if not (args.corpus / "meta.json").exists():
        raise SystemExit(f"no corpus in {args.corpus}: run `make corpus` first")
    meta = D.corpus_meta(args.corpus)
    tok_path = args.corpus / "tokenizer.json"
    (args.out / "tokenizer.json").write_bytes(tok_path.read_bytes())
    state = (
        torch.load(ckpt_path, weights_only=False, map_location="cpu") if args.resume and ckpt_path.exists() else None
    )
    if state is not None:
        cfg = BitnetConfig(**state["config"])
    else:
        cfg = BitnetConfig(
            vocab=int(meta["vocab"]),
            n_embd=args.embd,
            n_ff=args.ff,
            n_layer=args.layers,
            n_head=args.heads,
            n_head_kv=args.kv_heads,
            context=args.seq,
        )
    seq = cfg.context
    train = D.load_split(args.corpus, "train")
    valid = D.load_split(args.corpus, "valid")
    batcher = D.Batcher(train, tok_path, seq, args.fim_rate, args.spm_rate, args.seed)
    evaluator = Evaluator(D.Batcher(valid, tok_path, seq, seed=args.seed), args.eval_windows, args.eval_fim, seq)

    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    workers = args.workers if args.workers >= 0 else max(1, min(12, (os.cpu_count() or 2) - 2))
    if not use_cuda and args.workers < 0:
        workers = 0
    batches = Batches(batcher, workers)  # forks before CUDA starts
    device = torch.device("cuda" if use_cuda else "cpu")
    micro = args.micro_batch or (64 if use_cuda else 8)
    accum = max(1, args.batch_tokens // (micro * seq))
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda else torch.autocast("cpu", enabled=False)

    torch.manual_seed(args.seed)
    model = BitnetLM(cfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt_kw = {"fused": True} if use_cuda else {}
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
        **opt_kw,
    )
    step, elapsed_before, total_steps = 0, 0.0, args.steps
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed_before = int(state["step"]), float(state.get("elapsed", 0.0))
        total_steps = args.steps or int(state.get("total_steps", 0))
    n_params = sum(p.numel() for p in model.parameters())
    emit(
        event="start",
        step=step,
        device=str(device),
        gpu=torch.cuda.get_device_name() if use_cuda else None,
        torch=torch.__version__,
        params=n_params,
        config=asdict(cfg),
        micro_batch=micro,
        accum=accum,
        tokens_per_step=micro * accum * seq,
        train_tokens=int(train.stream.size),
        valid_tokens=int(valid.stream.size),
        workers=workers,
        args={k: str(v) for k, v in vars(args).items()},
    )

    compiled = False
    if args.compile:
        try:
            compile_blocks(model)
            compiled = True
        except Exception as exc:  # noqa: BLE001 - any failure means eager
            emit(event="compile_failed", error=repr(exc)[:500])
            uncompile_blocks(model)

    def loss_of(m, rows: torch.Tensor) -> torch.Tensor:
        with autocast():
            logits = m(rows[:, :-1])
        return F.cross_entropy(logits.float().reshape(-1, cfg.vocab), rows[:, 1:].reshape(-1))

    def drop_compile(exc: Exception) -> None:
        """Compilation errors surface on a compiled model's first call: go on eager, or re-raise an eager error."""
        nonlocal compiled
        if not compiled:
            raise exc
        emit(event="compile_failed", error=repr(exc)[:500])
        uncompile_blocks(model)
        compiled = False

    if use_cuda:  # pre-flight at full size: compiles, and halves the micro-batch until it fits in memory
        while True:
            oom = False
            try:
                rows = torch.randint(0, cfg.vocab, (micro, seq + 1), device=device)
                loss_of(model, rows).backward()
            except torch.cuda.OutOfMemoryError:
                oom = True
            except Exception as exc:  # noqa: BLE001 - see drop_compile
                drop_compile(exc)
                opt.zero_grad(set_to_none=True)
                continue
            opt.zero_grad(set_to_none=True)
            rows = None
            if not oom:
                torch.cuda.synchronize()
                emit(
                    event="preflight",
                    micro_batch=micro,
                    accum=accum,
                    compiled=compiled,
                    max_memory_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1),
                )
                break
            gc.collect()  # the failed pass's activations, freed once the exception is gone
            torch.cuda.empty_cache()
            if micro == 1:
                raise SystemExit("out of GPU memory at one row per micro-batch")
            micro, accum = micro // 2, accum * 2
            emit(event="oom", micro_batch=micro, accum=accum)

    budget = args.budget_seconds
    sized = total_steps > 0
    if not sized and budget <= 0:
        total_steps, sized = 2000, True
    warmup = min(args.warmup, max(1, total_steps // 10)) if sized else args.warmup
    provisional = total_steps if sized else 100_000  # before sizing: warm-up only, the schedule's shape unknown
    measure_from, measure_to = step + 3, step + 13  # steps timed for sizing (after compilation)
    t_measure = None
    resized = False
    last_ckpt = time.time()
    export_proc: subprocess.Popen | None = None
    eval_every = args.eval_every
    it = batches.iterate(step, accum, micro)
    t_loop, tokens_done = time.time(), 0
    t_log, tok_log = time.time(), 0

    def evaluate() -> None:
        with eager(model):  # no recompilation for the evaluation's shapes
            r = evaluator.run(model, device, autocast)
        r["suffix_value_psm"] = r["fim_middle_psm_no_suffix"] - r["fim_middle_psm"]
        r["suffix_value_spm"] = r["fim_middle_spm_no_suffix"] - r["fim_middle_spm"]
        emit(event="eval", step=step, **{k: round(v, 4) for k, v in r.items()})

    def checkpoint() -> None:
        nonlocal export_proc, last_ckpt
        save(ckpt_path, model, opt, step, total_steps, args, elapsed_before + time.time() - t_start)
        last_ckpt = time.time()
        if args.export_to is not None:
            if export_proc is not None and export_proc.poll() is None:
                export_proc.wait()  # the previous export must finish before the checkpoint it reads is replaced
            export_proc = start_export(ckpt_path, args.export_to, args.corpus, log)
        emit(event="checkpoint", step=step)

    while step < (total_steps if sized else provisional):
        n_total = total_steps if sized else provisional
        lr = lr_at(step, n_total, args.lr, warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        for _ in range(accum):
            rows = torch.from_numpy(next(it)).to(device, non_blocking=True)
            try:
                loss = loss_of(model, rows)
            except Exception as exc:  # noqa: BLE001 - see drop_compile
                drop_compile(exc)
                loss = loss_of(model, rows)
            (loss / accum).backward()
            loss_sum += loss.item() if (step + 1) % args.log_every == 0 else 0.0
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens_done += micro * accum * seq
        tok_log += micro * accum * seq
        if use_cuda and step in (measure_from, measure_to):
            torch.cuda.synchronize()
        if step == measure_from:
            t_measure = time.time()
        if not sized and step == measure_to:
            per_step = (time.time() - t_measure) / (measure_to - measure_from)
            left = budget - (time.time() - t_start) - 25.0  # final evaluation, checkpoint and export
            total_steps = step + max(10, int(left / (per_step * 1.06)))  # ~6% for evaluations and checkpoints
            sized = True
            warmup = min(warmup, max(step + 1, total_steps // 10))
            emit(
                event="sized",
                step=step,
                total_steps=total_steps,
                seconds_per_step=round(per_step, 4),
                tokens_per_second=round(micro * accum * seq / per_step),
            )
        if (
            sized
            and budget > 0
            and not resized
            and step >= measure_to + 10
            and step >= 0.2 * total_steps
            and args.steps == 0
        ):
            per_step = (time.time() - t_measure) / (step - measure_from)
            left = budget - (time.time() - t_start) - 25.0
            total_steps = step + max(1, int(left / per_step))
            resized = True
            emit(event="resized", step=step, total_steps=total_steps, seconds_per_step=round(per_step, 4))
        if step % args.log_every == 0:
            now = time.time()
            emit(
                step=step,
                loss=round(loss_sum / accum, 4),
                lr=round(lr, 6),
                tokens_per_second=round(tok_log / max(1e-9, now - t_log)),
                tokens=tokens_done,
            )
            t_log, tok_log = now, 0
        if sized and not eval_every:
            eval_every = max(50, total_steps // 8)
        if eval_every and step % eval_every == 0 and step < total_steps:
            evaluate()
        if time.time() - last_ckpt > args.checkpoint_minutes * 60 and step < total_steps:
            checkpoint()
        if budget > 0 and time.time() - t_start > budget - 15 and step < total_steps:
            emit(event="out_of_budget", step=step, total_steps=total_steps)
            total_steps = step
    evaluate()
    checkpoint()
    batches.close()
    if export_proc is not None:
        export_proc.wait()
    emit(
        event="done",
        step=step,
        total_steps=total_steps,
        tokens=tokens_done,
        elapsed_s=round(elapsed_before + time.time() - t_start, 1),
        loop_tokens_per_second=round(tokens_done / max(1e-9, time.time() - t_loop)),
    )


if __name__ == "__main__":
    main()
