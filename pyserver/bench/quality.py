"""`python -m pyserver bench quality`: how good the model is on code it never saw.

Held-out sets (each scored when present):
- `stdlib`: the standard-library files held out by path hash (pyserver/bench/stdlib_corpus.py);
- `valid`: the validation packages of the training corpus, whole packages never trained on;
- `eval`: the evaluation packages (click, jinja2, requests, rich, ...) that no model of ours trains on.
`valid` and `eval` come from build/heldout/texts.jsonl.xz, which `make corpus` writes (models/train/corpus.py).

Per set: bits per byte and next-token accuracy of the model and of a token 4-gram baseline (interpolated
Witten-Bell, fitted on the corpus's training split with the corpus's tokenizer when build/corpus exists, else on the
standard library's training files with the model's tokenizer) on the same bytes; exact match of single-line
fill-in-the-middle completions (the cursor at the start of a random non-empty line, the rest of that line as the
target); and the suffix's value: the middle's nats/token given prefix and suffix against given the prefix alone, in
every FIM order the model was trained on (`ryzanstein.fim.orders`).

    python -m pyserver.bench.quality --model FILE [--sets stdlib,valid,eval] [--max-tokens N] [--lines N]
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.bench.ngram import TokenNgram
from pyserver.bench.stdlib_corpus import source_files
from pyserver.completion.complete import complete_line
from pyserver.engine import Model

MAX_LINE_TOKENS = 48
ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "build" / "corpus"
HELDOUT = ROOT / "build" / "heldout" / "texts.jsonl.xz"
SETS = ("stdlib", "valid", "eval")
SET_ABOUT = {
    "stdlib": "Python standard library files held out by path hash (pyserver/bench/stdlib_corpus.py)",
    "valid": "validation packages of the training corpus, never trained on (models/train/packages.py VALIDATION)",
    "eval": "evaluation packages, never trained on (models/train/packages.py EVALUATION)",
}
SUFFIX_EXAMPLES = 100
SUFFIX_CONTEXT = 512  # prompt tokens for the suffix's value (prefix + suffix + middle)
MIDDLE_TOKENS = 64


# ---- held-out texts ------------------------------------------------------------------------------------------------


def set_texts(name: str) -> list[str]:
    """The texts of a held-out set in a fixed order ([] when the set is not there)."""
    if name == "stdlib":
        return [f.text for f in source_files("eval")]
    if not HELDOUT.exists():
        return []
    rows = []
    with lzma.open(HELDOUT, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d["split"] == name and d["package"] != "stdlib" and "==" not in d["package"]:
                rows.append((d["package"], d["path"], d["text"]))
    # Interleave packages (stable order) so a token cap samples every package, not the first few.
    by_pkg: dict[str, list[str]] = {}
    for pkg, _, text in sorted(rows):
        by_pkg.setdefault(pkg, []).append(text)
    out: list[str] = []
    i = 0
    while any(i < len(v) for v in by_pkg.values()):
        out.extend(v[i] for v in by_pkg.values() if i < len(v))
        i += 1
    return out


def held_out_token_files(
    model: Model, max_tokens: int, texts: Sequence[str] | None = None
) -> list[tuple[list[int], str]]:
    """Held-out files as token lists (the model's tokenizer), in order, until max_tokens tokens are collected."""
    tok = model.tokenizer
    assert tok is not None
    out, total = [], 0
    for text in texts if texts is not None else set_texts("stdlib"):
        ids = tok.encode(text)[: max_tokens - total]
        if ids:
            out.append((ids, tok.decode(ids)))
            total += len(ids)
        if total >= max_tokens:
            break
    return out


# ---- next-token scores ---------------------------------------------------------------------------------------------


def _log2_softmax_at(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return (z[np.arange(len(targets)), targets] - lse) / math.log(2)


class Baseline:
    """The n-gram with the tokenizer it counts in (the model's own, or the corpus's)."""

    def __init__(self, ngram: TokenNgram, encode: Callable[[str], list[int]], about: str) -> None:
        self.ngram, self.encode, self.about = ngram, encode, about

    def score(self, texts: Sequence[str]) -> tuple[float, int, int]:
        """(bits, correct, tokens) over the texts."""
        bits, correct, n = 0.0, 0, 0
        for text in texts:
            ids = self.encode(text)
            for i, t in enumerate(ids):
                p = self.ngram.distribution(ids[max(0, i - 3) : i])
                bits += -math.log2(p[t])
                correct += int(int(np.argmax(p)) == t)
            n += len(ids)
        return bits, correct, n


def next_token_scores(
    model: Model, files: list[tuple[list[int], str]], ngram: TokenNgram | Baseline | None
) -> dict[str, Any]:
    """Every token scored given its in-file history: the model in windows of its context (each window's first
    token sees the previous token, or end-of-text at the file start, as training did); the n-gram its last 3
    (a bare TokenNgram counts in the model's tokens)."""
    tok = model.tokenizer
    assert tok is not None and tok.special.eos is not None
    ctx = min(model.config.context_length, 1024)
    bits = correct = 0.0
    n_tokens = n_bytes = 0
    for ids, text in files:
        n_bytes += len(text.encode("utf-8"))
        n_tokens += len(ids)
        arr = np.asarray(ids)
        for w0 in range(0, len(ids), ctx):
            window = arr[w0 : w0 + ctx]
            seq = [tok.special.eos if w0 == 0 else ids[w0 - 1]] + ids[w0 : w0 + len(window) - 1]
            logits = model.session(n_ctx=ctx).append(seq, n_logits=len(seq))  # row i predicts window[i]
            assert logits is not None  # (None only when cancelled)
            bits += float(-_log2_softmax_at(logits, window).sum())
            correct += int((logits.argmax(axis=1) == window).sum())
    out: dict[str, Any] = {
        "tokens": n_tokens,
        "bytes": n_bytes,
        "model": {"bits_per_byte": round(bits / n_bytes, 4), "next_token_accuracy": round(correct / n_tokens, 4)},
    }
    if ngram is not None:
        base = ngram if isinstance(ngram, Baseline) else Baseline(ngram, tok.encode, "model tokenizer")
        b, c, n = base.score([text for _, text in files])
        out["ngram"] = {
            "bits_per_byte": round(b / n_bytes, 4),
            "next_token_accuracy": round(c / max(1, n), 4),
            "tokens": n,
        }
    return out


def head_agreement(model: Model, exact: Model, files: list[tuple[list[int], str]]) -> dict[str, Any]:
    """How often the model's quantized output head (4-bit or int8 rows, its top candidates rescored from the
    stored table) picks the same greedy token as the float head, at every position of the held-out files."""
    tok = model.tokenizer
    assert tok is not None and tok.special.eos is not None
    ctx = min(model.config.context_length, 1024)
    same = n = 0
    for ids, _ in files:
        for w0 in range(0, len(ids), ctx):
            seq = [tok.special.eos if w0 == 0 else ids[w0 - 1]] + ids[w0 : w0 + ctx - 1]
            a = model.session(n_ctx=ctx).append(seq, n_logits=len(seq))
            b = exact.session(n_ctx=ctx).append(seq, n_logits=len(seq))
            assert a is not None and b is not None
            same += int((a.argmax(axis=1) == b.argmax(axis=1)).sum())
            n += len(seq)
    return {"positions": n, "greedy_agreement_with_f32_head": round(same / max(1, n), 5)}


def corpus_baseline(max_tokens: int | None = None) -> Baseline | None:
    """The 4-gram on the corpus's training split, counted in the corpus tokenizer (None without build/corpus)."""
    if not (CORPUS / "train.u16.xz").exists():
        return None
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_file(str(CORPUS / "tokenizer.json"))
    hf.encode_special_tokens = True
    meta = json.loads((CORPUS / "meta.json").read_text())
    with lzma.open(CORPUS / "train.u16.xz", "rb") as f:
        stream = np.frombuffer(f.read(), dtype="<u2").astype(np.int64)
    if max_tokens:
        stream = stream[:max_tokens]
    eot = int(meta["eot"])
    cuts = np.flatnonzero(stream == eot)
    files = np.split(stream, cuts + 1)
    files = [f[f != eot] for f in files]
    n_text = eot  # control tokens come last: the n-gram's vocabulary is the text tokens
    ngram = TokenNgram(n_text, order=4).fit([f for f in files if f.size])
    return Baseline(
        ngram,
        lambda s: list(hf.encode(s, add_special_tokens=False).ids),
        f"4-gram on the corpus training split ({stream.size:,} tokens, corpus tokenizer)",
    )


def stdlib_baseline(model: Model) -> Baseline:
    tok = model.tokenizer
    assert tok is not None
    n_text = min(tok.control_ids) if tok.control_ids else tok.vocab_size
    ngram = TokenNgram(n_text, order=4).fit([np.asarray(tok.encode(f.text), np.int64) for f in source_files("train")])
    return Baseline(ngram, tok.encode, "4-gram on the standard library's training files (model tokenizer)")


# ---- fill-in-the-middle ----------------------------------------------------------------------------------------------


def fim_lines(n: int, seed: int = 0, texts: Sequence[str] | None = None) -> list[tuple[str, int, int]]:
    """n (text, line_start, line_end) picks of non-empty held-out lines, deterministic."""
    candidates = []
    for text in texts if texts is not None else set_texts("stdlib"):
        pos = 0
        for line in text.split("\n"):
            if line.strip():
                candidates.append((text, pos, pos + len(line)))
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
    examples: list[dict[str, str]] = []
    for text, a, b in lines:
        # The cursor sits at the line start; the whole line is the target (complete_line reads the suffix from the
        # end of the cursor's line, so give it the text with the line removed).
        s = complete_line(model, text[:a] + text[b:], a, session=session, max_tokens=MAX_LINE_TOKENS)
        latencies.append(s.latency_ms / 1e3)
        got, want = s.text, text[a:b].rstrip()
        exact += int(got == want)
        if len(examples) < 5:
            examples.append({"target": want, "completion": got})
    return {
        "lines": len(lines),
        "exact_match": round(exact / max(1, len(lines)), 4),
        "median_latency_ms": round(float(np.median(latencies)) * 1e3, 1),
        "examples": examples,
    }


def fim_layout(
    sp: Any, pre: list[int], mid: list[int], suf: list[int], order: str, limit: int
) -> tuple[list[int], int]:
    """(tokens, index of the middle's first token): PSM or SPM (prefix and middle contiguous), the middle whole,
    the suffix's start (at most a quarter) and the prefix's end within `limit` tokens, as training lays them out."""
    room = limit - 3 - len(mid)
    suf = suf[: max(room // 4, room - len(pre))]
    keep = room - len(suf)
    pre = pre[len(pre) - keep :] if keep < len(pre) else pre
    if order == "spm":
        toks = [sp.fim_prefix, sp.fim_suffix, *suf, sp.fim_middle, *pre, *mid]
    else:
        toks = [sp.fim_prefix, *pre, sp.fim_suffix, *suf, sp.fim_middle, *mid]
    return toks, len(toks) - len(mid)


def suffix_value(model: Model, lines: list[tuple[str, int, int]]) -> dict[str, Any]:
    """The middle's (a whole line's) nats/token given prefix and suffix, and given the prefix alone (an empty
    suffix, same layout), in each FIM order the model was trained on."""
    tok = model.tokenizer
    assert tok is not None
    sp = tok.special
    if not sp.has_fim:
        return {"skipped": "the model has no fill-in-the-middle tokens"}
    traits = getattr(model, "traits", None)
    orders = tuple(getattr(traits, "fim_orders", ("psm",)))
    limit = min(model.config.context_length, SUFFIX_CONTEXT)
    out: dict[str, Any] = {"examples": len(lines), "context": limit}
    for order in orders:
        nats = {"with_suffix": 0.0, "without_suffix": 0.0}
        n = 0
        for text, a, b in lines:
            pre, mid, suf = tok.encode(text[:a]), tok.encode(text[a:b])[:MIDDLE_TOKENS], tok.encode(text[b:])
            for key, s in (("with_suffix", suf), ("without_suffix", [])):
                toks, _ = fim_layout(sp, pre, mid, s, order, limit)
                rows = model.session(n_ctx=limit).append(toks, n_logits=len(mid) + 1)
                assert rows is not None  # (None only when cancelled)
                logits = rows[:-1]
                nats[key] += float(-_log2_softmax_at(logits, np.asarray(mid)).sum()) * math.log(2)
            n += len(mid)
        w, wo = nats["with_suffix"] / max(1, n), nats["without_suffix"] / max(1, n)
        out[order] = {
            "middle_nats_per_token_with_suffix": round(w, 4),
            "middle_nats_per_token_without_suffix": round(wo, 4),
            "suffix_value_nats_per_token": round(wo - w, 4),
            "middle_tokens": n,
        }
    return out


# ---- the report ----------------------------------------------------------------------------------------------------


def run_quality_bench(
    model_path: Path,
    max_tokens: int = 60_000,
    n_lines: int = 500,
    with_ngram: bool = True,
    sets: Sequence[str] = SETS,
    n_suffix: int = SUFFIX_EXAMPLES,
    ngram_max_tokens: int | None = None,
) -> dict[str, Any]:
    model = Model.load(model_path)
    exact = Model.load(model_path, head="f32")
    tok = model.tokenizer
    assert tok is not None
    t0 = time.perf_counter()
    baseline: Baseline | None = None
    if with_ngram:
        baseline = corpus_baseline(ngram_max_tokens) or stdlib_baseline(model)
    t_fit = time.perf_counter() - t0
    report: dict[str, Any] = {
        "benchmark": "quality",
        "model": str(model_path),
        "ngram": baseline.about if baseline else None,
        "ngram_fit_seconds": round(t_fit, 1),
        "sets": {},
    }
    for name in sets:
        texts = set_texts(name)
        if not texts:
            report["sets"][name] = {"skipped": "not there (run `make corpus`)"}
            continue
        files = held_out_token_files(model, max_tokens, texts)
        scores = next_token_scores(model, files, baseline)
        r: dict[str, Any] = {"held_out": SET_ABOUT[name], "next_token": scores}
        r["output_head"] = head_agreement(model, exact, files)
        if baseline is not None:
            r["beats_4gram"] = {"bits_per_byte": scores["model"]["bits_per_byte"] < scores["ngram"]["bits_per_byte"]}
        if n_lines:
            r["fim_single_line"] = fim_exact_match(model, fim_lines(n_lines, texts=texts))
        if n_suffix:
            r["suffix_value"] = suffix_value(model, fim_lines(n_suffix, seed=1, texts=texts))
        report["sets"][name] = r
    return report


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--max-tokens", type=int, default=60_000)
    ap.add_argument("--lines", type=int, default=500, help="single-line FIM completions per set (0: none)")
    ap.add_argument("--suffix-examples", type=int, default=SUFFIX_EXAMPLES)
    ap.add_argument("--no-ngram", action="store_true")
    ap.add_argument("--ngram-max-tokens", type=int, default=None)
    args = ap.parse_args(argv)
    report = run_quality_bench(
        args.model,
        args.max_tokens,
        args.lines,
        not args.no_ngram,
        [s for s in args.sets.split(",") if s],
        args.suffix_examples,
        args.ngram_max_tokens,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
