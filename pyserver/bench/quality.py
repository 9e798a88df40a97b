"""`python -m pyserver bench quality`: how good the model is on held-out standard-library files it never saw.

Reports bits per byte and next-token accuracy (the model and a token 4-gram baseline on the same positions), and
exact match of single-line fill-in-the-middle completions: the cursor at the start of a random non-empty line, the
rest of that line as the target, prefix and suffix from the file.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.bench.ngram import TokenNgram
from pyserver.bench.stdlib_corpus import source_files
from pyserver.engine import Model
from pyserver.completion.complete import complete_line

MAX_LINE_TOKENS = 48


def held_out_token_files(model: Model, max_tokens: int) -> list[tuple[list[int], str]]:
    """Held-out files as token lists, in order, until max_tokens tokens are collected."""
    tok = model.tokenizer
    assert tok is not None
    out, total = [], 0
    for f in source_files("eval"):
        ids = tok.encode(f.text)[: max_tokens - total]
        if ids:
            out.append((ids, tok.decode(ids)))
            total += len(ids)
        if total >= max_tokens:
            break
    return out


def _log2_softmax_at(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return (z[np.arange(len(targets)), targets] - lse) / math.log(2)


def next_token_scores(model: Model, files: list[tuple[list[int], str]], ngram: TokenNgram | None) -> dict[str, Any]:
    """Every token scored given its in-file history: the model in windows of its context (each window's first
    token sees the previous token, or end-of-text at the file start, as training did); the n-gram its last 3."""
    tok = model.tokenizer
    assert tok is not None and tok.special.eos is not None
    ctx = min(model.config.context_length, 512)
    bits = {"model": 0.0, "ngram": 0.0}
    correct = {"model": 0, "ngram": 0}
    n_tokens = n_bytes = 0
    for ids, text in files:
        n_bytes += len(text.encode("utf-8"))
        n_tokens += len(ids)
        arr = np.asarray(ids)
        for w0 in range(0, len(ids), ctx):
            window = arr[w0:w0 + ctx]
            seq = [tok.special.eos if w0 == 0 else ids[w0 - 1]] + ids[w0:w0 + len(window) - 1]
            logits = model.session(n_ctx=ctx).append(seq, n_logits=len(seq))  # row i predicts window[i]
            bits["model"] += float(-_log2_softmax_at(logits, window).sum())
            correct["model"] += int((logits.argmax(axis=1) == window).sum())
        if ngram is not None:
            for i, t in enumerate(ids):
                p = ngram.distribution(ids[max(0, i - 3):i])
                bits["ngram"] += -math.log2(p[t])
                correct["ngram"] += int(int(np.argmax(p)) == t)
    out: dict[str, Any] = {"tokens": n_tokens, "bytes": n_bytes}
    for k in ("model", "ngram") if ngram is not None else ("model",):
        out[k] = {"bits_per_byte": round(bits[k] / n_bytes, 4), "next_token_accuracy": round(correct[k] / n_tokens, 4)}
    return out


def fim_lines(n: int, seed: int = 0) -> list[tuple[str, int, int]]:
    """n (text, line_start, line_end) picks of non-empty held-out lines, deterministic."""
    candidates = []
    for f in source_files("eval"):
        pos = 0
        for line in f.text.split("\n"):
            if line.strip():
                candidates.append((f.text, pos, pos + len(line)))
            pos += len(line) + 1
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    return [candidates[int(i)] for i in sorted(picks)]


def fim_exact_match(model: Model, lines: list[tuple[str, int, int]]) -> dict[str, Any]:
    tok = model.tokenizer
    assert tok is not None
    sp = tok.special
    if not sp.has_fim:
        return {"skipped": "the model has no fill-in-the-middle tokens"}
    exact, latencies = 0, []
    session = model.session(n_ctx=min(model.config.context_length, 1024))
    examples = []
    for text, a, b in lines:
        # The cursor sits at the line start; the whole line is the target (complete_line reads the suffix from the
        # end of the cursor's line, so give it the text with the line removed).
        s = complete_line(model, text[:a] + text[b:], a, session=session, max_tokens=MAX_LINE_TOKENS)
        latencies.append(s.latency_ms / 1e3)
        got, want = s.text, text[a:b].rstrip()
        exact += int(got == want)
        if len(examples) < 5:
            examples.append({"target": want, "completion": got})
    return {"lines": len(lines), "exact_match": round(exact / max(1, len(lines)), 4),
            "median_latency_ms": round(float(np.median(latencies)) * 1e3, 1), "examples": examples}


def run_quality_bench(model_path: Path, max_tokens: int = 60_000, n_lines: int = 500,
                      with_ngram: bool = True) -> dict[str, Any]:
    model = Model.load(model_path)
    tok = model.tokenizer
    assert tok is not None
    t0 = time.perf_counter()
    ngram = None
    if with_ngram:
        ngram = TokenNgram(model.config.vocab, order=4).fit(
            [np.asarray(tok.encode(f.text), np.int64) for f in source_files("train")])
    t_fit = time.perf_counter() - t0
    files = held_out_token_files(model, max_tokens)
    scores = next_token_scores(model, files, ngram)
    fim = fim_exact_match(model, fim_lines(n_lines))
    report: dict[str, Any] = {
        "benchmark": "quality",
        "model": str(model_path),
        "held_out": "Python standard library files held out by path hash (pyserver/bench/stdlib_corpus.py)",
        "next_token": scores,
        "fim_single_line": fim,
        "ngram_fit_seconds": round(t_fit, 1),
    }
    if ngram is not None:
        report["beats_4gram"] = {
            "bits_per_byte": scores["model"]["bits_per_byte"] < scores["ngram"]["bits_per_byte"],
            "next_token_accuracy": scores["model"]["next_token_accuracy"] > scores["ngram"]["next_token_accuracy"],
        }
    return report
