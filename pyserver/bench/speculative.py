"""`python -m pyserver bench speculative`: draft-verify decoding against plain greedy decoding of the same target.

- The shipped model as target, drafted by its own first layers (a smaller sibling sharing the tokenizer and the
  head), on held-out code: speed-up and acceptance.
- Random weights at tier shapes (target 2B4T, draft a 2-layer model of the same vocabulary): random models do not
  agree, so acceptance is near zero; the run measures what a verify pass costs against a single-token step, from
  which the report derives the speed-up a draft with a given acceptance would give.
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


def _random_tiers(max_tokens: int) -> dict[str, Any]:
    target_shape = SHAPES["2b4t"]
    draft_shape = BenchShape(
        target_shape.config.with_(n_embd=512, n_ff=1024, n_layer=2, n_head=8, n_head_kv=2, head_dim=64, rope_dim=64),
        "2-layer draft",
    )
    target = build_random_model(target_shape, "I2_S")
    draft = build_random_model(draft_shape, "I2_S", seed=1)
    prompt = [int(t) for t in np.random.default_rng(2).integers(0, target_shape.config.vocab, 64)]
    s = target.session(256)
    s.eval(prompt)

    def timed(fn: Callable[[], object], reps: int = 6) -> float:
        fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    def append(session: Session, n: int, logits: int) -> Callable[[], object]:
        def run() -> object:
            session.truncate(len(prompt))
            return session.append(prompt[:n], n_logits=logits)

        return run

    step_s = timed(append(s, 1, 1))
    d = draft.session(256)
    d.eval(prompt)
    draft_step_s = timed(append(d, 1, 1))
    out: dict[str, Any] = {
        "target": "2b4t shape, random I2_S",
        "draft": "2 layers x 512, same vocabulary, random",
        "target_step_ms": round(step_s * 1e3, 2),
        "draft_step_ms": round(draft_step_s * 1e3, 2),
    }
    for k in KS:
        verify_s = timed(append(s, k + 1, k + 1))
        t0 = time.perf_counter()
        ref = plain_greedy(target.session(256), prompt, max_tokens)
        plain_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = speculative_greedy(target.session(256), draft.session(256), prompt, max_tokens, k=k)
        spec_s = time.perf_counter() - t0
        out[f"k{k}"] = {
            f"verify_{k + 1}_tokens_ms": round(verify_s * 1e3, 2),
            "verify_cost_in_steps": round(verify_s / step_s, 2),
            "measured": {
                "acceptance": round(r.acceptance, 3),
                "speedup": round(plain_s / spec_s, 2),
                "output_equal_to_plain_greedy": r.tokens == ref,
            },
            "expected_speedup_at_acceptance": {
                str(a): round(_expected_speedup(a, k, step_s, verify_s, draft_step_s), 2) for a in (0.5, 0.7, 0.9)
            },
        }
    return out


def run_speculative_bench(quick: bool = False) -> dict[str, Any]:
    return {
        "benchmark": "speculative",
        "shipped_with_truncated_sibling": _shipped(4 if quick else 12, 32 if quick else 48),
        "random_tier_shapes": _random_tiers(16 if quick else 32),
    }
