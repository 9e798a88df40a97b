"""`python -m pyserver bench completion`: replays typing sessions over held-out files through the completion
pipeline the server uses (cache, context, prompt, model, filters), as an editor with a debounce would call it.

A simulated typist types each file from a random line onwards, character by character, with human-like gaps between
keys; whenever a gap is longer than the debounce, the editor asks for a suggestion. Reported: time from request to
suggestion (p50/p95, and for cache hits alone), cache hit rate, tokens evaluated per request (prompt tokens not
served from the KV cache, plus generated ones), how often the suggestion is what the user typed next, and how many of
its characters agree with it; then the same replay with the workspace index (the standard library) filling the
prompt's extra context, and the change it makes.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyserver.bench.stdlib_corpus import SourceFile, source_files, stdlib_root
from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.index.workspace import WorkspaceIndex
from pyserver.server.settings import ServerSettings
from pyserver.tiers.routing import report as escalation_report

TARGETS = {"p50_ms": 30.0, "p95_ms": 80.0, "cache_hit_ms": 2.0}
DEBOUNCE_MS = 120.0


def _keystroke_gaps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Milliseconds between keys: mostly quick (log-normal around 110 ms), with occasional pauses to think."""
    gaps = rng.lognormal(mean=np.log(110.0), sigma=0.45, size=n)
    pauses = rng.random(n) < 0.08
    gaps[pauses] += rng.uniform(300, 1500, size=int(pauses.sum()))
    return gaps


def _replay(engine: CompletionPipeline, picks: list[SourceFile], chars_per_file: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    latencies, hit_latencies, evaluated = [], [], []
    requests = hits = accepted = shown = matching_chars = 0
    entropies: list[float] = []
    for f in picks:
        text = f.text
        lines = text.split("\n")
        start_line = int(rng.integers(len(lines) // 4, len(lines) // 2))
        start = sum(len(x) + 1 for x in lines[:start_line])
        gaps = _keystroke_gaps(rng, chars_per_file)
        uri = (stdlib_root() / f.rel).as_uri()
        for i in range(chars_per_file):
            cursor = start + i
            if gaps[i] < DEBOUNCE_MS:  # the next key comes before the debounce fires: no request
                continue
            # The document as the editor has it: typed up to the cursor; the rest of the line not yet there.
            line_end = text.find("\n", cursor)
            line_end = len(text) if line_end < 0 else line_end
            doc = text[:cursor] + text[line_end:]
            t0 = time.perf_counter()
            c = engine.complete(uri, doc, cursor, lambda: False)
            ms = (time.perf_counter() - t0) * 1e3
            requests += 1
            if c is None:
                continue
            latencies.append(ms)
            if c.from_cache:
                hits += 1
                hit_latencies.append(ms)
            else:
                evaluated.append(c.prompt_tokens - c.reused_tokens + c.generated_tokens)
            if c.text:
                shown += 1
                if not c.from_cache:
                    entropies.append(c.mean_entropy)
                nxt = text[cursor : line_end + 1]
                accepted += int(nxt.startswith(c.text))
                matching_chars += len(os.path.commonprefix([nxt, c.text]))
    lat = np.asarray(latencies)
    return {
        "requests": requests,
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p95_ms": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
        "cache_hit_rate": round(hits / max(1, requests), 3),
        "cache_hit_p50_ms": round(float(np.median(hit_latencies)), 3) if hit_latencies else None,
        "tokens_evaluated_per_model_request": round(float(np.mean(evaluated)), 1) if evaluated else None,
        "suggestions_shown": shown,
        "suggestion_matches_next_text": round(accepted / max(1, shown), 3),
        # Characters a user would keep by accepting word by word: the suggestion's common prefix with what came next.
        "matching_chars_per_suggestion": round(matching_chars / max(1, shown), 2),
        # How often a suggestion would go to a larger tier (pyserver/tiers/routing.py), and the calibration.
        "escalation": escalation_report(entropies),
    }


def run_completion_bench(
    model_path: Path | None = None, files: int = 6, chars_per_file: int = 300, seed: int = 0, with_index: bool = True
) -> dict[str, Any]:
    host = ModelHost()
    host.load(str(model_path) if model_path else "")
    if host.model is None:
        raise RuntimeError(f"no model: {host.error}")
    rng = np.random.default_rng(seed)
    held = [f for f in source_files("eval") if len(f.text) > 2 * chars_per_file]
    picks = [held[int(i)] for i in rng.choice(len(held), size=min(files, len(held)), replace=False)]
    report: dict[str, Any] = {
        "benchmark": "completion",
        "model": str(host.model_path),
        "files": [f.rel for f in picks],
        "debounce_ms": DEBOUNCE_MS,
    }
    report |= _replay(CompletionPipeline(host, ServerSettings().completion), picks, chars_per_file, seed)
    if with_index:
        # The same replay with the workspace index (the standard library, lexical) filling the extra context.
        with tempfile.TemporaryDirectory() as d:
            index = WorkspaceIndex(stdlib_root(), Path(d) / "index.sqlite")
            index.scan()
            engine = CompletionPipeline(host, ServerSettings().completion)
            engine.index_context = lambda path, prefix, budget: [
                (h.chunk.path, h.chunk.text) for h in index.completion_context(prefix, budget, path)
            ]
            with_ctx = _replay(engine, picks, chars_per_file, seed)
            index.close()
        report["with_index_context"] = with_ctx
        report["index_context_change"] = {
            "suggestion_matches_next_text": round(
                with_ctx["suggestion_matches_next_text"] - report["suggestion_matches_next_text"], 3
            ),
            "matching_chars_per_suggestion": round(
                with_ctx["matching_chars_per_suggestion"] - report["matching_chars_per_suggestion"], 2
            ),
        }
    report["targets"] = TARGETS
    if report["p50_ms"] is not None:
        report["met"] = {
            "p50": report["p50_ms"] <= TARGETS["p50_ms"],
            "p95": report["p95_ms"] <= TARGETS["p95_ms"],
            "cache_hit": (report["cache_hit_p50_ms"] or 0.0) <= TARGETS["cache_hit_ms"],
        }
    return report
