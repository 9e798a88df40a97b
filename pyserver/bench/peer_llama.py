"""Times mainline llama.cpp (PyPI's llama-cpp-python, low-level API) the way llama-bench does: prefill is one batch
of `pp` tokens into an empty cache (logits for the last only), decode is `tg` single-token steps from position 0,
each after one untimed warm-up as llama-bench's (examples/llama-bench: the whole prompt once, then one decode step;
llama.cpp's Q2_0 has no SIMD kernel, so a 1.7B prefill of it takes minutes on 2 cores). Runs in its own process so
llama.cpp's threads and memory never share a process with the engine being compared:

    python -m pyserver.bench.peer_llama FILE --threads 2 --pp 128 --tg 64      # prints {"prefill_s": .., ...}
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from collections.abc import Sequence
from typing import Any


def quiet(llama_cpp: Any) -> None:
    """Drops llama.cpp's log (it writes each tensor's line to stderr)."""

    def ignore(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        pass

    drop = llama_cpp.llama_log_callback(ignore)
    llama_cpp.llama_log_set(drop, ctypes.c_void_p())
    quiet.keep = drop  # type: ignore[attr-defined]  # the callback must outlive this call


def time_llama_cpp(path: str, threads: int, pp: int, tg: int, vocab: int) -> dict[str, float]:
    import llama_cpp as L

    quiet(L)
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = L.llama_model_load_from_file(path.encode(), mp)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {path}")
    cp = L.llama_context_default_params()
    cp.n_ctx = pp + tg + 16
    cp.n_batch = cp.n_ubatch = pp
    cp.n_threads = cp.n_threads_batch = threads
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    batch = L.llama_batch_init(pp, 0, 1)
    memory = L.llama_get_memory(ctx)

    def run(tokens: Sequence[int], pos0: int) -> None:
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos0 + i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    prompt = [(7919 * i + 13) % (vocab - 3) + 3 for i in range(pp)]

    def prefill() -> float:
        L.llama_memory_clear(memory, True)
        t0 = time.perf_counter()
        run(prompt, 0)
        return time.perf_counter() - t0

    def decode(n: int = tg) -> float:
        L.llama_memory_clear(memory, True)
        t0 = time.perf_counter()
        for i in range(n):
            run([prompt[i % pp]], i)
        return time.perf_counter() - t0

    prefill()
    pre = prefill()
    decode(1)
    dec = decode()
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return {"prefill_s": pre, "decode_s": dec}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--pp", type=int, default=128)
    ap.add_argument("--tg", type=int, default=64)
    ap.add_argument("--vocab", type=int, required=True)
    a = ap.parse_args(argv)
    print(json.dumps(time_llama_cpp(a.file, a.threads, a.pp, a.tg, a.vocab)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
