"""Does the engine compute what llama.cpp computes on the same Qwen3 file? Random-weight Ternary-Bonsai-shaped files
(peer_files.qwen3_file: F16 ternary-times-group-scale values, and llama.cpp's own Q2_0 / TQ2_0 quantizations of
them), with and without outlier channels; for each, the logits of both engines at every one of `positions` tokens,
compared by Pearson correlation and greedy top-1 agreement against the issue's bars (>= 0.999, >= 0.99).

llama.cpp runs in a child process (as peer_llama does) so its memory is gone before the engine loads the file:

    python -m pyserver.bench.agreement --shape bonsai-1.7b              # prints the JSON report

What the figures mean: llama.cpp quantizes activations for Q2_0 per block of 32 (q8_0) and for TQ2_0 per block
of 256 (q8_K); its F16 run keeps them in F16 and is the reference closest to the file's exact model. The engine
quantizes per block of `act_block` (config.py) everywhere. On random weights the logits have no clear winner at
many positions (their top two are close), so top-1 agreement is a stricter test here than on a trained model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.engine.machine import cpu_model

CORRELATION_BAR = 0.999
TOP1_BAR = 0.99
DEFAULT_VARIANTS = ["f16", "q2_0", "tq2_0"]


def tokens_for(vocab: int, n: int, seed: int = 0) -> list[int]:
    """n token ids spread over the vocabulary's text tokens (the random model has no preferred ones)."""
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(3, min(vocab, 8000), n)]


def llama_cpp_logits(path: Path, tokens: list[int], threads: int) -> np.ndarray:
    """llama.cpp's logits [len(tokens), vocab] for one sequence from position 0, computed in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.npy"
        cmd = [sys.executable, "-m", "pyserver.bench.agreement", "--llama-child", str(path), str(out)]
        cmd += ["--threads", str(threads), "--tokens", ",".join(map(str, tokens))]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return np.load(out)


def _child(path: str, out: str, tokens: list[int], threads: int) -> None:
    import llama_cpp

    from pyserver.bench.peer_llama import quiet

    quiet(llama_cpp)
    llm = llama_cpp.Llama(
        path,
        n_ctx=len(tokens) + 16,
        n_batch=len(tokens),
        logits_all=True,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    llm.eval(tokens)
    np.save(out, np.asarray(llm.scores[: len(tokens)], dtype=np.float32))


def engine_logits(path: Path, tokens: list[int], threads: int, act_block: int | None = None) -> tuple[np.ndarray, int]:
    """The engine's logits at every position, and the activation block it ran with (config.py: the weights' group,
    unless `act_block` fixes one)."""
    from pyserver import native
    from pyserver.engine.loaders import load_weights
    from pyserver.engine.model import Model

    native.set_num_threads(threads)
    weights, tokenizer = load_weights(path)
    if act_block is not None:
        weights.config = weights.config.with_(act_block=act_block, act_block_max=act_block)
    model = Model(weights, tokenizer, path)
    logits = model.session(n_ctx=len(tokens) + 16).append(tokens, n_logits=len(tokens))
    assert logits is not None
    return logits, model.config.act_block


def compare(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    corr = float(np.corrcoef(ours.astype(np.float64).ravel(), theirs.astype(np.float64).ravel())[0, 1])
    top1 = float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)))
    return {
        "correlation": round(corr, 6),
        "top1_agreement": round(top1, 4),
        "pass": corr >= CORRELATION_BAR and top1 >= TOP1_BAR,
    }


def run_agreement(
    shape: str,
    variants: list[str] | None = None,
    positions: int = 256,
    outliers: tuple[bool, ...] = (False, True),
    threads: int = 2,
) -> dict[str, Any]:
    """Per variant and outlier setting: the engine's logits against llama.cpp's on the same file and tokens; for
    Q2_0 (the F16 file's weights exactly) also both engines against llama.cpp's F16 run, the closest to the exact
    model. TQ2_0 (one scale per 256) is a lossy requantization: compared only with llama.cpp on the same file."""
    from pyserver import native
    from pyserver.bench.peer_files import QWEN3_SHAPES, qwen3_file

    cfg = QWEN3_SHAPES[shape]
    tokens = tokens_for(cfg.vocab, positions)
    rows = []
    for outl in outliers:
        f16_ref: np.ndarray | None = None
        for variant in variants or DEFAULT_VARIANTS:
            path = qwen3_file(shape, variant, outliers=outl, threads=threads)
            theirs = llama_cpp_logits(path, tokens, threads)
            if variant == "f16":
                f16_ref = theirs
            ours, block = engine_logits(path, tokens, threads)
            row: dict[str, Any] = {"variant": variant, "outliers": outl, "file": path.name, "act_block": block}
            row |= compare(ours, theirs)
            if f16_ref is not None and variant == "q2_0":  # exact: the F16 file's very weights (TQ2_0 is lossy)
                row["vs_llama_cpp_f16"] = compare(ours, f16_ref)
                row["llama_cpp_vs_its_f16"] = compare(theirs, f16_ref)
            rows.append(row)
    return {
        "shape": shape,
        "positions": positions,
        "threads": threads,
        "bars": {"correlation": CORRELATION_BAR, "top1_agreement": TOP1_BAR},
        "cpu": cpu_model(),
        "isa": str(native.cpu_info()["active"]),
        "results": rows,
        "pass": all(r["pass"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="bonsai-1.7b")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    ap.add_argument("--positions", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llama-child", nargs=2, metavar=("FILE", "OUT"))
    ap.add_argument("--tokens", default="")
    a = ap.parse_args(argv)
    if a.llama_child:
        _child(a.llama_child[0], a.llama_child[1], [int(t) for t in a.tokens.split(",")], a.threads)
        return 0
    report = run_agreement(a.shape, a.variants.split(","), a.positions, threads=a.threads)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
