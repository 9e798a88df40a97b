"""`python -m pyserver bench completion --shape 2b4t|bonsai-1.7b [--model FILE]`: how long a user waits for a
suggestion from a real tier's model, replayed over real files.

The model is a random-weight one at the tier's shape (speed does not depend on the weights) with the shipped
model's code vocabulary, so prompts have as many tokens as a code model's would; or any model file. A Bonsai shape
(Qwen3) is peer_files.qwen3_file's Q2_0 file: group-scaled ternary weights, a ternary head of Qwen's 151,936 rows,
and a Qwen2-style vocabulary of the shipped model's pieces plus Qwen's specials (FIM included), as llama.cpp's
quantizer wrote it. Per file (the
held-out standard-library files of 1,000 lines or more), through the pipeline and the host the server uses:
- cold: a newly opened file, nothing cached: time to the first suggestion;
- after a rest: a newly opened file where the cursor rested `rest_s` seconds first (the warm-up ran meanwhile);
- typing: then the user types the rest of the line, a suggestion requested at every keystroke: per-keystroke p50
  and p95 (the prompt stays the same along a line, so the cache serves it);
- interrupted warm-ups: a completion asked for while a warm-up of another position runs: how long it waited for
  the model (one warm-up step at most: a completion cancels the running step at its next layer);
- with the index: the same files in a workspace of real source files, the prompt's extra context from its index
  (cold, after the scan), then again while a second index of the workspace is built from nothing (scan, then
  embeddings) by the server's own IndexHost: what indexing costs a completion (it yields to the completion thread).
Generation is capped as the server caps it (ServerSettings: the time budget, max tokens) and at a single-line
suggestion's length (SUGGESTION_TOKENS: random weights never end a line by themselves); a request counts as a
budget miss when its suggestion took longer than the time budget.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from pyserver import native
from pyserver.bench.model import SHAPES
from pyserver.bench.peer_files import latency_proxy_file, qwen3_file
from pyserver.bench.stdlib_corpus import source_files, stdlib_root
from pyserver.completion.pipeline import CompletionPipeline
from pyserver.engine.host import ModelHost
from pyserver.engine.machine import cpu_model
from pyserver.models import default_model_path
from pyserver.server.settings import ServerSettings
from pyserver.server.warmup import warm_position

MIN_LINES = 1000
TYPED_CHARS = 24  # keystrokes replayed along the line after the rest
SUGGESTION_TOKENS = 12  # a single-line suggestion (the shipped model's average is ~10 tokens)
# The tier shapes, 2B4T and Ternary-Bonsai-1.7B alike (issue 27: cold p50 <= 1.5 s with the cut prompt, warm
# keystroke p50 <= 400 ms).
TARGETS_2B4T = {"warm_keystroke_p50_ms": 400.0, "after_rest_ms": 700.0, "cold_ms": 1500.0, "max_wait_ms": 100.0}
# The shipped model (issue 27): cold p50 / p95 (index context included), per keystroke p50, and what indexing may
# cost a cold completion.
TARGETS_SHIPPED = {"cold_p50_ms": 150.0, "cold_p95_ms": 250.0, "keystroke_p50_ms": 60.0, "indexing_cost": 0.10}
WORKSPACE_EXTRA_FILES = 200  # other source files beside the measured ones in the indexed workspace


def _pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 1) if xs else None


def _cursor(text: str, rng: np.random.Generator) -> int:
    """The start of an indented line in the second half of the file (inside a body, where completions happen)."""
    lines = text.split("\n")
    candidates = [i for i in range(len(lines) // 2, len(lines) - 2) if lines[i].startswith("    ") and lines[i].strip()]
    i = int(rng.choice(candidates)) if candidates else len(lines) // 2
    return sum(len(x) + 1 for x in lines[:i]) + (len(lines[i]) - len(lines[i].lstrip()))


def _doc(text: str, cursor: int) -> str:
    """The document as the editor has it while the line is being typed: the rest of the line not there yet."""
    end = text.find("\n", cursor)
    return text[:cursor] + text[len(text) if end < 0 else end :]


def _rest(host: ModelHost, pipeline: CompletionPipeline, uri: str, doc: str, cursor: int, rest_s: float) -> int:
    """The cursor rests rest_s seconds: the warm-up runs (as the server runs it on a cursor-rest notification)."""
    deadline = time.perf_counter() + rest_s
    done = warm_position(host, pipeline, uri, doc, cursor, lambda: time.perf_counter() > deadline)
    time.sleep(max(0.0, deadline - time.perf_counter()))
    return done


def _workspace(picks: list[Any], others: list[Any], root: Path) -> list[Path]:
    """A workspace of real files: the measured ones and others, at their stdlib paths under root."""
    for f in picks + others:
        dst = root / f.rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(f.text, encoding="utf-8")
    return [root / f.rel for f in picks]


def _cold_in(
    pipeline: CompletionPipeline, paths: list[Path], texts: list[str], rng: np.random.Generator, tag: str
) -> list[float]:
    out = []
    for n, (path, text) in enumerate(zip(paths, texts)):
        cursor = _cursor(text, rng)
        c = pipeline.complete(f"{path.as_uri()}#{tag}{n}", _doc(text, cursor), cursor, lambda: False)
        if c is not None:
            out.append(c.latency_ms)
    return out


def index_phases(host: ModelHost, pipeline: CompletionPipeline, picks: list[Any], seed: int) -> dict[str, Any]:
    """Cold completions with the prompt's extra context from a workspace index: once the index is scanned (quiet),
    then while the server's IndexHost builds a second index of the workspace from nothing."""
    import tempfile

    from pyserver.index.workspace import WorkspaceIndex
    from pyserver.server.index_host import IndexHost

    others = [f for f in source_files("train") if f.rel not in {p.rel for p in picks}]
    others = [others[int(i)] for i in np.random.default_rng(seed).choice(len(others), WORKSPACE_EXTRA_FILES, False)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "workspace"
        paths = _workspace(picks, others, root)
        texts = [f.text for f in picks]
        ready = WorkspaceIndex(root, Path(tmp) / "ready.sqlite")
        ready.scan()
        pipeline.index_context = lambda path, prefix, budget: [
            (h.chunk.path, h.chunk.text) for h in ready.completion_context(prefix, budget, path)
        ]
        # Twice each (other cursors): more samples for the percentiles.
        quiet = _cold_in(pipeline, paths, texts, np.random.default_rng(seed), "iq") + _cold_in(
            pipeline, paths, texts, np.random.default_rng(seed + 1), "iq2"
        )
        building = IndexHost(host.completion_running)
        building.start([root], str(Path(tmp) / "building"), (), ())
        time.sleep(0.5)  # the scan is under way
        states = [building.state]
        busy = _cold_in(pipeline, paths, texts, np.random.default_rng(seed), "ib")
        deadline = time.monotonic() + 120  # then again while the embeddings are computed
        while building.state == "scanning" and time.monotonic() < deadline:
            time.sleep(0.2)
        states.append(building.state)
        busy += _cold_in(pipeline, paths, texts, np.random.default_rng(seed + 1), "ib2")
        states.append(building.state)
        building.stop()
        pipeline.index_context = None
        ready.close()
    p_quiet, p_busy = float(np.percentile(quiet, 50)), float(np.percentile(busy, 50))
    return {
        "workspace_files": len(picks) + len(others),
        "cold_with_index_context_ms": {"p50": _pct(quiet, 50), "p95": _pct(quiet, 95), "n": len(quiet)},
        "cold_while_indexing_ms": {"p50": _pct(busy, 50), "p95": _pct(busy, 95), "n": len(busy)},
        "indexer_states_seen": states,
        "indexing_cost": round(p_busy / p_quiet - 1.0, 3),
    }


def tier_proxy_file(shape: str, shipped: Path) -> Path:
    """The random-weight file standing in for a tier's model at `shape` (SHAPES), with a code vocabulary: a Qwen3
    (Bonsai) shape's random Q2_0 file, else a BitNet file with the shipped model's vocabulary (both cached)."""
    if SHAPES[shape].config.arch == "qwen3":
        return qwen3_file(shape, "q2_0")
    return latency_proxy_file(shape, SHAPES[shape].config, shipped)


def run_latency_bench(
    model_path: Path | None,
    shape: str | None,
    files: int = 4,
    rest_s: float = 3.0,
    seed: int = 0,
    with_index: bool = True,
) -> dict[str, Any]:
    if model_path is None and shape is not None:
        shipped = default_model_path()
        if shipped is None:
            raise RuntimeError("the proxy model takes the shipped model's vocabulary: no shipped model found")
        model_path = tier_proxy_file(shape, shipped)
    host = ModelHost()
    host.load(str(model_path) if model_path else "")
    if host.model is None:
        raise RuntimeError(f"no model: {host.error}")
    settings = ServerSettings()
    settings = ServerSettings(max_tokens=min(settings.max_tokens, SUGGESTION_TOKENS))
    pipeline = CompletionPipeline(host, settings.completion)
    budget_ms = settings.time_budget_ms
    rng = np.random.default_rng(seed)
    long_files = [f for f in source_files("eval") if f.text.count("\n") >= MIN_LINES]
    picks = [long_files[int(i)] for i in rng.choice(len(long_files), size=min(files, len(long_files)), replace=False)]
    cold, rested, keys, waits, prompts = [], [], [], [], []
    misses = requests = 0
    for n, f in enumerate(picks):
        cursor = _cursor(f.text, rng)
        doc = _doc(f.text, cursor)
        base = (stdlib_root() / f.rel).as_uri()
        c = pipeline.complete(f"{base}#cold{n}", doc, cursor, lambda: False)  # a newly opened file
        if c is not None:
            cold.append(c.latency_ms)
            prompts.append({"file": f.rel, "cold": c.cold, "cold_prompt_tokens": c.prompt_tokens})
        uri = f"{base}#rest{n}"  # newly opened again: the cursor rests first
        _rest(host, pipeline, uri, doc, cursor, rest_s)
        c = pipeline.complete(uri, doc, cursor, lambda: False)
        if c is not None:
            rested.append(c.latency_ms)
            prompts[-1] |= {"after_rest_cold": c.cold, "after_rest_prompt_tokens": c.prompt_tokens}
        end = f.text.find("\n", cursor)
        for k in range(1, min(TYPED_CHARS, max(1, end - cursor)) + 1):  # typing along the line
            typed = f.text[: cursor + k] + f.text[end:]
            c = pipeline.complete(uri, typed, cursor + k, lambda: False)
            if c is not None:
                keys.append(c.latency_ms)
        # A completion while a warm-up for another position of the file runs: how long it waits for the model.
        other = _cursor(f.text, rng)
        stop = threading.Event()
        th = threading.Thread(target=warm_position, args=(host, pipeline, uri, _doc(f.text, other), other, stop.is_set))
        th.start()
        time.sleep(0.3)
        c = pipeline.complete(f"{base}#third{n}", "x = 1\n", 6, lambda: False)
        waits.append(host.last_wait_ms)
        stop.set()
        th.join()
    for lat in cold + rested + keys:
        requests += 1
        misses += int(lat > budget_ms)
    report: dict[str, Any] = {
        "benchmark": "completion latency",
        "model": str(host.model_path),
        "shape": shape,
        "cpu": cpu_model(),
        "isa": native.cpu_info()["auto"],
        "threads": native.num_threads(),
        "measured_speeds": {
            "prefill_tps": round(host.speeds.prefill_tps, 1),
            "decode_tps": round(host.speeds.decode_tps, 1),
        },
        "time_budget_ms": budget_ms,
        "max_tokens": settings.max_tokens,
        "rest_s": rest_s,
        "files": [f.rel for f in picks],
        "cold_first_suggestion_ms": {"p50": _pct(cold, 50), "p95": _pct(cold, 95), "max": _pct(cold, 100)},
        "after_rest_first_suggestion_ms": {"p50": _pct(rested, 50), "max": _pct(rested, 100)},
        "keystroke_ms": {"p50": _pct(keys, 50), "p95": _pct(keys, 95), "n": len(keys)},
        "wait_behind_warm_up_ms": {"max": _pct(waits, 100), "all": [round(w, 1) for w in waits]},
        "budget_misses": {"requests": requests, "over_budget": misses},
        "prompts": prompts,
    }
    if with_index:
        report["with_index"] = index_phases(host, pipeline, picks, seed)
    report["targets"] = TARGETS_2B4T if shape is not None else TARGETS_SHIPPED
    if shape is not None:
        cold_p50, key_p50 = report["cold_first_suggestion_ms"]["p50"], report["keystroke_ms"]["p50"]
        report["met"] = {
            "cold_p50": cold_p50 is not None and cold_p50 <= TARGETS_2B4T["cold_ms"],
            "warm_keystroke_p50": key_p50 is not None and key_p50 <= TARGETS_2B4T["warm_keystroke_p50_ms"],
        }
    return report
