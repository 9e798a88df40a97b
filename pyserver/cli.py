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
    else:  # argparse restricts the choices
        raise AssertionError(args.what)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
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
    bench.add_argument("what", choices=["kernels"], help="what to measure")
    bench.add_argument("--quick", action="store_true", help="one shape, the best ISA path, fewer repetitions")
    bench.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    bench.add_argument("--no-scalar", action="store_true", help="skip the (slow) scalar reference path")
    bench.set_defaults(func=_cmd_bench)

    cpu = sub.add_parser("cpu", help="CPU features, dispatch level and SIMD self-check")
    cpu.set_defaults(func=_cmd_cpu)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
