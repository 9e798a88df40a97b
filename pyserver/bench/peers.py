"""`python -m pyserver bench peers`: this engine and mainline llama.cpp on the same GGUF files, same thread counts, in
one run, with ratios. A ratio is the only speed figure that travels between machines: both engines meet the same
memory bandwidth, the same neighbours and the same clock on the same day.

llama.cpp comes from PyPI's llama-cpp-python (the optional `peers` extra; pip builds it from source for this CPU) and
runs in a child process per repetition (peer_llama.py), alternating with this engine so a slow spell of the machine
falls on both. Each repetition times prefill (one batch of `pp` tokens) and decode (`tg` single-token steps) as
llama-bench does. The files (peer_files.py) are random-weight `bitnet` GGUFs at a published checkpoint's shape.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

from pyserver import native
from pyserver.bench.model import SHAPES
from pyserver.bench.peer_files import VARIANTS, peer_file, tensor_types
from pyserver.engine.machine import cpu_model
from pyserver.engine.model import Model
from pyserver.tiers.hardware import measure_bandwidth

# Targets (issue 16), against llama.cpp in the same run, TQ2_0 with a Q6_K embedding unless said.
TARGETS = {"decode": 1.6, "prefill": 2.7, "tq1_0_decode": 1.5, "decode_bandwidth_fraction": 0.8}


def _time_ours(model: Model, threads: int, pp: int, tg: int, vocab: int) -> dict[str, float]:
    native.set_num_threads(threads)
    prompt = [(7919 * i + 13) % (vocab - 3) + 3 for i in range(pp)]
    s = model.session(pp + tg + 16)

    def prefill() -> float:
        s.truncate(0)
        t0 = time.perf_counter()
        s.append(prompt)
        return time.perf_counter() - t0

    def decode() -> float:
        s.truncate(0)
        t0 = time.perf_counter()
        for i in range(tg):
            s.append([prompt[i % pp]])
        return time.perf_counter() - t0

    prefill()
    pre = prefill()
    decode()
    return {"prefill_s": pre, "decode_s": decode()}


def _time_llama_cpp(path: str, threads: int, pp: int, tg: int, vocab: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyserver.bench.peer_llama",
            path,
            "--threads",
            str(threads),
            "--pp",
            str(pp),
            "--tg",
            str(tg),
            "--vocab",
            str(vocab),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"llama.cpp run failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _rates(runs: list[dict[str, float]], pp: int, tg: int) -> dict[str, Any]:
    pre = [pp / r["prefill_s"] for r in runs]
    dec = [tg / r["decode_s"] for r in runs]
    return {
        "prefill_tps": round(statistics.median(pre), 1),
        "decode_tps": round(statistics.median(dec), 2),
        "prefill_range": [round(min(pre), 1), round(max(pre), 1)],
        "decode_range": [round(min(dec), 2), round(max(dec), 2)],
    }


def _isas(requested: list[str] | None) -> list[str]:
    simd = [i for i in native.available_isas() if i != "scalar"]
    return [i for i in (requested or simd) if i in native.available_isas()]


def bench_variant(
    shape_name: str,
    variant: str,
    threads: list[int],
    reps: int,
    pp: int,
    tg: int,
    isas: list[str],
    layouts: list[str],
) -> dict[str, Any]:
    cfg = SHAPES[shape_name].config
    path = peer_file(shape_name, cfg, variant)
    # ours_<isa>, with _<layout> for a layout other than the default one ("auto": the autotuner's choice). A model
    # runs on the ISA level set when it is built, so each ISA gets its own.
    names = {(i, lay): f"ours_{i}" + ("" if lay == "auto" else f"_{lay}") for i in isas for lay in layouts}
    models = {}
    for isa, layout in names:
        native.set_isa_cap(isa)
        models[(isa, layout)] = Model.load(path, layout=layout)
    native.set_isa_cap(isas[-1])
    out: dict[str, Any] = {
        "variant": variant,
        "file": str(path),
        "tensor_types": tensor_types(path),
        "bytes_per_token": {names[k]: m.stats.bytes_per_token for k, m in models.items()},
        "packings": {names[k]: sorted({s.packing for s in m.tensor_stats}) for k, m in models.items()},
        "runs": [],
    }
    for n in threads:
        bw = measure_bandwidth(n)
        ours: dict[str, list[dict[str, float]]] = {name: [] for name in names.values()}
        peer: list[dict[str, float]] = []
        for _ in range(reps):  # alternate, so a slow spell of the machine falls on both engines
            for key, name in names.items():
                ours[name].append(_time_ours(models[key], n, pp, tg, cfg.vocab))
            peer.append(_time_llama_cpp(str(path), n, pp, tg, cfg.vocab))
        theirs = _rates(peer, pp, tg)
        row: dict[str, Any] = {"threads": n, "read_bandwidth_gbs": round(bw, 1), "llama_cpp": theirs}
        for key, name in names.items():
            mine = _rates(ours[name], pp, tg)
            per_token = models[key].stats.bytes_per_token
            mine["decode_bandwidth_fraction"] = round(per_token * mine["decode_tps"] / (bw * 1e9), 3)
            mine["prefill_ratio"] = round(mine["prefill_tps"] / theirs["prefill_tps"], 2)
            mine["decode_ratio"] = round(mine["decode_tps"] / theirs["decode_tps"], 2)
            row[name] = mine
        out["runs"].append(row)
    models.clear()
    return out


def run_peers_bench(
    shape_name: str = "2b4t",
    variants: list[str] | None = None,
    threads: list[int] | None = None,
    reps: int = 3,
    pp: int = 128,
    tg: int = 64,
    isas: list[str] | None = None,
    layouts: list[str] | None = None,
) -> dict[str, Any]:
    try:
        import llama_cpp
    except ImportError as exc:
        raise SystemExit(
            "bench peers needs llama-cpp-python: pip install -e '.[peers]' (it builds llama.cpp "
            "from source, a few minutes)"
        ) from exc
    variants = variants or list(VARIANTS)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)} (known: {', '.join(VARIANTS)})")
    isa_list = _isas(isas)
    before = native.num_threads()
    try:
        results = [
            bench_variant(shape_name, v, threads or [1, 2], reps, pp, tg, isa_list, layouts or ["auto"])
            for v in variants
        ]
    finally:
        native.set_num_threads(before)
    return {
        "benchmark": "peers",
        "shape": shape_name,
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "isa_auto": native.cpu_info()["auto"],
        "isas_timed": isa_list,
        "llama_cpp": {
            "package": f"llama-cpp-python {llama_cpp.__version__}",
            "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        },
        "pp": pp,
        "tg": tg,
        "reps": reps,
        "targets": TARGETS,
        "results": results,
    }
