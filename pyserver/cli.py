"""Command line: `python -m pyserver <command>`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "kernels":
        from pyserver.bench.kernels import run_kernel_bench

        report = run_kernel_bench(quick=args.quick, threads=args.threads, with_scalar=not args.no_scalar)
    elif args.what == "model":
        from pyserver.bench.model import run_model_bench

        report = run_model_bench(args.shape, fmt=args.format, threads=args.threads, reps=1 if args.quick else 3)
    else:  # argparse restricts the choices
        raise AssertionError(args.what)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from pyserver import native
    from pyserver.engine import Model, ModelLoadError
    from pyserver.engine.generate import Generation
    from pyserver.engine.sampling import Sampler, SamplerConfig

    if args.threads:
        native.set_num_threads(args.threads)
    try:
        model = Model.load(args.model)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tok = model.tokenizer
    assert tok is not None
    prompt = ([tok.special.bos] if tok.special.add_bos and tok.special.bos is not None else []) + tok.encode(args.prompt)
    sampler = Sampler(SamplerConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                    repetition_penalty=args.repetition_penalty, seed=args.seed))
    g = Generation(model.session(), prompt, sampler=sampler, max_tokens=args.max_tokens,
                   stop_strings=args.stop or (), time_budget_s=args.time_budget)
    sys.stdout.write(args.prompt)
    for piece in g:
        sys.stdout.write(piece)
        sys.stdout.flush()
    r = g.result
    sys.stdout.write("\n")
    summary = {
        "model": str(model.path), "arch": model.config.arch, "isa": model.native.isa,
        "threads": native.num_threads(), "load_seconds": round(model.stats.seconds, 3),
        "prompt_tokens": r.prompt_tokens, "generated_tokens": len(r.tokens), "stop_reason": r.stop_reason,
        "prefill_tokens_per_s": round(r.prompt_tokens / r.prefill_seconds, 1) if r.prefill_seconds else None,
        "decode_tokens_per_s": round(r.decode_tokens_per_second, 1),
    }
    print(json.dumps(summary), file=sys.stderr)
    return 0


def _cmd_cpu(_args: argparse.Namespace) -> int:
    from pyserver.native import cpu_info

    json.dump(cpu_info(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyserver", description="Ryzanstein sidecar and tools")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmarks printing JSON (medians and ratios)")
    bench.add_argument("what", choices=["kernels", "model"], help="what to measure")
    bench.add_argument("--quick", action="store_true", help="fewer shapes and repetitions")
    bench.add_argument("--shape", default="2b4t",
                       choices=["2b4t", "large", "3b-falcon", "7b-falcon", "10b-falcon", "tiny"],
                       help="model: the real checkpoint shape to build with random weights")
    bench.add_argument("--format", default="I2_S", choices=["I2_S", "TQ2_0", "TQ1_0"],
                       help="model: the ternary packing of the projections")
    bench.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    bench.add_argument("--no-scalar", action="store_true", help="skip the (slow) scalar reference path")
    bench.set_defaults(func=_cmd_bench)

    gen = sub.add_parser("generate", help="generate text from a model file (GGUF or safetensors directory)")
    gen.add_argument("model", help="path to a .gguf file or a Hugging Face checkpoint directory")
    gen.add_argument("--prompt", default="def fibonacci(n):\n")
    gen.add_argument("--max-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--repetition-penalty", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--stop", action="append", help="stop string (repeatable)")
    gen.add_argument("--time-budget", type=float, default=None, help="seconds")
    gen.add_argument("--threads", type=int, default=None)
    gen.set_defaults(func=_cmd_generate)

    cpu = sub.add_parser("cpu", help="CPU features, dispatch level and SIMD self-check")
    cpu.set_defaults(func=_cmd_cpu)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
