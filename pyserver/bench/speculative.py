"""`python -m pyserver bench speculative`: draft-verify decoding against plain greedy decoding of the same target.

- The shipped model as target, drafted by its own first layers (a smaller sibling sharing the tokenizer and the
  head), on held-out code: speed-up and acceptance.
- Random weights at tier shapes (target 2B4T, draft a 2-layer model of the same vocabulary): random models do not
  agree, so acceptance is near zero; the run measures what a verify pass costs against a single-token step, from
  which the report derives the speed-up a draft with a given acceptance would give.
- `--arch qwen3`: Ternary-Bonsai's pair, the 1.7B drafting for the 8B (same tokenizer), random group-scaled
  weights at both shapes: the draft step, verify passes of k + 1 = 2..9 tokens, the speed-up at acceptances
  0.3-0.95 and the acceptance from which each k pays (a real pair's acceptance needs the real weights).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.bench.model import SHAPES, BenchShape, build_random_model
from pyserver.bench.stdlib_corpus import source_files
from pyserver.engine.loaders import load_weights
from pyserver.engine.machine import cpu_model
from pyserver.engine.model import Model, Session
from pyserver.engine.speculative import plain_greedy, speculative_greedy
from pyserver.models import default_model_path

KS = (1, 2, 4)  # draft lengths measured: a verify pass of k + 1 tokens costs more with k (compute-bound here)


def truncated_sibling(path: Path, n_layers: int) -> Model:
    """The model's first n_layers with its own norm and head: a draft that shares tokenizer and embedding."""
    weights, tokenizer = load_weights(path)
    cfg = dataclasses.replace(weights.config, n_layer=n_layers)
    small = dataclasses.replace(weights, config=cfg, layers=weights.layers[:n_layers])
    return Model(small, tokenizer, path)


def _expected_speedup(acceptance: float, k: int, step_s: float, verify_s: float, draft_step_s: float) -> float:
    """Tokens per round / round time against one target step per token (acceptance per draft token, i.i.d.)."""
    tokens = sum(acceptance**i for i in range(k + 1))  # expected accepted prefix + the target's own token
    round_s = verify_s + k * draft_step_s
    return (tokens / round_s) * step_s


def _shipped(prompts: int, max_tokens: int) -> dict[str, Any]:
    path = default_model_path()
    if path is None:
        return {"skipped": "no shipped model"}
    target = Model.load(path)
    out: dict[str, Any] = {"target": path.name}
    tok = target.tokenizer
    assert tok is not None
    files = [f for f in source_files("eval") if len(f.text) > 2000]
    rng = np.random.default_rng(0)
    texts = [files[int(i)].text for i in rng.choice(len(files), size=prompts, replace=False)]
    for layers, k in ((1, 2), (2, 1), (2, 2), (2, 4), (3, 2)):
        draft = truncated_sibling(path, layers)
        plain_s = spec_s = 0.0
        drafted = accepted = equal = 0
        rng_k = np.random.default_rng(1)
        for text in texts:
            start = int(rng_k.integers(0, len(text) - 1500))
            prompt = tok.encode(text[start : start + 1200])[-200:]
            t0 = time.perf_counter()
            ref = plain_greedy(target.session(512), prompt, max_tokens)
            plain_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            r = speculative_greedy(target.session(512), draft.session(512), prompt, max_tokens, k=k)
            spec_s += time.perf_counter() - t0
            drafted, accepted = drafted + r.drafted, accepted + r.accepted
            equal += int(r.tokens == ref)
        out[f"draft_{layers}_of_{target.config.n_layer}_layers_k{k}"] = {
            "acceptance": round(accepted / max(1, drafted), 3),
            "speedup": round(plain_s / spec_s, 2),
            "outputs_equal_to_plain_greedy": f"{equal}/{len(texts)}",
        }
    return out


def _timed(fn: Callable[[], object], reps: int = 6) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _append(session: Session, prompt: list[int], n: int, logits: int) -> Callable[[], object]:
    """n tokens (with logits for the last `logits`) after the cached prompt: a step (n = 1) or a verify pass."""

    def run() -> object:
        session.truncate(len(prompt))
        return session.append(prompt[:n], n_logits=logits)

    return run


def break_even_acceptance(k: int, step_s: float, verify_s: float, draft_step_s: float) -> float | None:
    """The per-token acceptance from which draft-verify with k drafts beats plain decoding (speed-up 1), or None
    when it never does (even a draft that is always right costs more than it saves)."""
    if _expected_speedup(1.0, k, step_s, verify_s, draft_step_s) <= 1.0:
        return None
    lo, hi = 0.0, 1.0  # the expected speed-up rises with acceptance
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _expected_speedup(mid, k, step_s, verify_s, draft_step_s) < 1.0 else (lo, mid)
    return round(hi, 3)


def _random_pair(
    target: Model,
    draft: Model,
    labels: dict[str, Any],
    ks: tuple[int, ...],
    max_tokens: int,
    acceptances: tuple[float, ...],
    reps: int = 6,
) -> dict[str, Any]:
    """What a verify pass of k + 1 tokens costs against one target step, the draft's step, and from those the
    speed-up at each acceptance and the acceptance from which it pays (random models do not agree, so their own
    acceptance says nothing); one measured run per k checks the output equals plain greedy decoding."""
    prompt = [int(t) for t in np.random.default_rng(2).integers(0, target.config.vocab, 64)]
    s = target.session(len(prompt) + max(max(ks) + 1, max_tokens) + 16)
    s.eval(prompt)
    step_s = _timed(_append(s, prompt, 1, 1), reps)
    d = draft.session(s.n_ctx)
    d.eval(prompt)
    draft_step_s = _timed(_append(d, prompt, 1, 1), reps)
    out: dict[str, Any] = labels | {
        "target_step_ms": round(step_s * 1e3, 3),
        "draft_step_ms": round(draft_step_s * 1e3, 3),
        "draft_step_in_target_steps": round(draft_step_s / step_s, 3),
    }
    best: dict[str, tuple[float, int]] = {}
    pays: list[float] = []
    for k in ks:
        verify_s = _timed(_append(s, prompt, k + 1, k + 1), reps)
        expected = {a: _expected_speedup(a, k, step_s, verify_s, draft_step_s) for a in acceptances}
        for a, x in expected.items():
            if x > best.get(str(a), (0.0, 0))[0]:
                best[str(a)] = (x, k)
        even = break_even_acceptance(k, step_s, verify_s, draft_step_s)
        if even is not None:
            pays.append(even)
        row: dict[str, Any] = {
            f"verify_{k + 1}_tokens_ms": round(verify_s * 1e3, 3),
            "verify_cost_in_steps": round(verify_s / step_s, 2),
            "pays_from_acceptance": even,
            "expected_speedup_at_acceptance": {str(a): round(x, 2) for a, x in expected.items()},
        }
        if max_tokens:
            t0 = time.perf_counter()
            ref = plain_greedy(target.session(s.n_ctx), prompt, max_tokens)
            plain_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            r = speculative_greedy(target.session(s.n_ctx), draft.session(s.n_ctx), prompt, max_tokens, k=k)
            spec_s = time.perf_counter() - t0
            row["measured"] = {
                "acceptance": round(r.acceptance, 3),
                "speedup": round(plain_s / spec_s, 2),
                "output_equal_to_plain_greedy": r.tokens == ref,
            }
        out[f"k{k}"] = row
    out["best_k_at_acceptance"] = {a: {"k": k, "speedup": round(x, 2)} for a, (x, k) in best.items()}
    out["pays_from_acceptance"] = min(pays) if pays else None
    return out


def _random_tiers(max_tokens: int) -> dict[str, Any]:
    target_shape = SHAPES["2b4t"]
    draft_shape = BenchShape(
        target_shape.config.with_(n_embd=512, n_ff=1024, n_layer=2, n_head=8, n_head_kv=2, head_dim=64, rope_dim=64),
        "2-layer draft",
    )
    target = build_random_model(target_shape, "I2_S")
    draft = build_random_model(draft_shape, "I2_S", seed=1)
    labels: dict[str, Any] = {"target": "2b4t shape, random I2_S", "draft": "2 layers x 512, same vocabulary, random"}
    return _random_pair(target, draft, labels, KS, max_tokens, (0.5, 0.7, 0.9))


# Ternary-Bonsai: the 1.7B drafts for the 8B (the same Qwen3 tokenizer and vocabulary). Real acceptance needs the
# real weights; this measures the costs and the acceptance a real pair must reach for draft-verify to pay.
BONSAI_KS = (1, 2, 3, 4, 5, 6, 7, 8)
BONSAI_ACCEPTANCES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _bonsai_pair(max_tokens: int, target_shape: str = "bonsai-8b", draft_shape: str = "bonsai-1.7b") -> dict[str, Any]:
    target = build_random_model(SHAPES[target_shape], "Q2_0")
    draft = build_random_model(SHAPES[draft_shape], "Q2_0", seed=1)
    labels = {
        "target": f"{target_shape} shape, random Q2_0 (group 64, ternary head), {target.native.isa}",
        "draft": f"{draft_shape} shape, random Q2_0, same vocabulary",
        "target_bytes_per_token": target.stats.bytes_per_token,
        "draft_bytes_per_token": draft.stats.bytes_per_token,
    }
    return _random_pair(target, draft, labels, BONSAI_KS, max_tokens, BONSAI_ACCEPTANCES, reps=3)


def run_speculative_bench(quick: bool = False, arch: str = "bitnet", threads: int = 0) -> dict[str, Any]:
    from pyserver import native

    if threads:
        native.set_num_threads(threads)
    if arch == "qwen3":
        return {
            "benchmark": "speculative",
            "arch": "qwen3",
            "cpu": cpu_model(),
            "isa": native.cpu_info()["auto"],
            "threads": native.num_threads(),
            "bonsai_1.7b_drafts_8b": _bonsai_pair(0 if quick else 16),
        }
    if arch != "bitnet":
        raise ValueError(f"speculative: arch must be bitnet or qwen3, got {arch!r}")
    return {
        "benchmark": "speculative",
        "shipped_with_truncated_sibling": _shipped(4 if quick else 12, 32 if quick else 48),
        "random_tier_shapes": _random_tiers(16 if quick else 32),
    }
