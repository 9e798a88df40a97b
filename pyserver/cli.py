"""Command line: `python -m pyserver <command>`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _emit(report: Any, args: argparse.Namespace, title: str = "") -> None:
    """The report as JSON (--json), Markdown (--markdown, where offered) or text for a person (the default)."""
    from pyserver.render import as_markdown, as_text

    if getattr(args, "json", False):
        json.dump(report, sys.stdout, indent=2)
    elif getattr(args, "markdown", False):
        sys.stdout.write(as_markdown(title, report))
    else:
        sys.stdout.write(as_text(report))
    sys.stdout.write("\n")


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "kernels":
        from pyserver.bench.kernels import run_kernel_bench

        report = run_kernel_bench(quick=args.quick, threads=args.threads, with_scalar=not args.no_scalar)
    elif args.what == "model":
        from pyserver.bench.model import run_model_bench

        report = run_model_bench(
            args.shape or "2b4t", fmt=args.format, threads=args.threads, reps=1 if args.quick else 3
        )
    elif args.what == "completion" and (args.shape or args.latency):
        from pyserver import native
        from pyserver.bench.completion_latency import run_latency_bench

        native.set_num_threads(max(args.threads))
        report = run_latency_bench(
            Path(args.model[0]) if args.model else None, args.shape, files=2 if args.quick else 4, rest_s=args.rest
        )
    elif args.what == "completion" and args.corpus != "stdlib":
        from pyserver.bench.completion_real import run_real_completion_bench

        models: list[Path | None] = [Path(m) for m in args.model] if args.model else [None]
        local = None if args.corpus == "real" else Path(args.corpus)
        report = run_real_completion_bench(
            models,
            samples=args.samples or (60 if args.quick else 600),
            do_calibrate=args.calibrate,
            save=args.save_calibration,
            save_beside=args.save_beside,
            local=local,
        )
    elif args.what == "completion":
        from pyserver.bench.completion import run_completion_bench

        report = run_completion_bench(
            Path(args.model[0]) if args.model else None,
            files=2 if args.quick else 6,
            chars_per_file=120 if args.quick else 300,
        )
    elif args.what == "peers":
        from pyserver.bench.peers import run_peers_bench

        report = run_peers_bench(
            args.shape or ("bonsai-1.7b" if args.arch == "qwen3" else "2b4t"),
            variants=args.variant,
            threads=args.threads,
            reps=1 if args.quick else 3,
            pp=args.pp,
            tg=args.tg,
            isas=args.isa,
            layouts=args.layout,
            arch=args.arch,
        )
    elif args.what == "agreement":
        from pyserver.bench.agreement import run_agreement

        report = run_agreement(
            args.shape or "bonsai-1.7b",
            variants=args.variant,
            positions=args.positions,
            threads=max(args.threads),
        )
    elif args.what == "speculative":
        from pyserver.bench.speculative import run_speculative_bench

        threads = max(args.threads) if args.arch == "qwen3" else 0
        report = run_speculative_bench(quick=args.quick, arch=args.arch, threads=threads)
    elif args.what == "index":
        from pyserver.bench.index import run_index_bench

        report = run_index_bench(quick=args.quick)
    elif args.what == "documents":
        from pyserver.bench.documents import run_documents_bench

        model = Path(args.model[0]) if args.model else None
        report = run_documents_bench(args.mb, 20 if args.quick else args.keystrokes, model)
    elif args.what == "soak":
        from pyserver.bench.soak import run_soak

        model = Path(args.model[0]) if args.model else None
        report = run_soak(args.minutes, model=model, shape=args.shape, **({"rate": args.rate} if args.rate else {}))
    elif args.what == "quality":
        from pyserver.bench.quality import run_quality_bench
        from pyserver.models import default_model_path

        path = Path(args.model[0]) if args.model else default_model_path()
        if path is None:
            print("error: no model given and no shipped model found in models/", file=sys.stderr)
            return 2
        report = run_quality_bench(
            path, max_tokens=20_000 if args.quick else 60_000, n_lines=100 if args.quick else 500
        )
    elif args.what == "refactors":
        from pyserver.bench.refactors import run_refactor_bench

        report = run_refactor_bench(Path(args.model[0]) if args.model else None, n=20 if args.quick else 80)
    else:  # argparse restricts the choices
        raise AssertionError(args.what)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    from pyserver.api.serve import serve

    return serve(args.host, args.port, args.model or "", args.api_key, args.threads)


def _cmd_continue_config(args: argparse.Namespace) -> int:
    from pyserver.api.continue_config import write_continue_config

    try:
        path = write_continue_config(
            f"http://{args.host}:{args.port}/v1", args.model_id, args.api_key, Path(args.path) if args.path else None
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Continue's config {path} now has the local model for chat, edit and autocomplete; start the API with "
        f"`python -m pyserver api --port {args.port}`"
    )
    return 0


def _cmd_mcp(args: argparse.Namespace) -> int:
    from pyserver.api.mcp_server import serve

    return serve(Path(args.root))


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
    bos = [tok.special.bos] if tok.special.add_bos and tok.special.bos is not None else []
    prompt = bos + tok.encode(args.prompt)
    sampler = Sampler(
        SamplerConfig(
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            repetition_penalty=args.repetition_penalty,
            seed=args.seed,
        )
    )
    g = Generation(
        model.session(),
        prompt,
        sampler=sampler,
        max_tokens=args.max_tokens,
        stop_strings=args.stop or (),
        time_budget_s=args.time_budget,
    )
    sys.stdout.write(args.prompt)
    for piece in g:
        sys.stdout.write(piece)
        sys.stdout.flush()
    r = g.result
    sys.stdout.write("\n")
    summary = {
        "model": str(model.path),
        "arch": model.config.arch,
        "isa": model.native.isa,
        "threads": native.num_threads(),
        "load_seconds": round(model.stats.seconds, 3),
        "prompt_tokens": r.prompt_tokens,
        "generated_tokens": len(r.tokens),
        "stop_reason": r.stop_reason,
        "prefill_tokens_per_s": round(r.prompt_tokens / r.prefill_seconds, 1) if r.prefill_seconds else None,
        "decode_tokens_per_s": round(r.decode_tokens_per_second, 1),
    }
    if args.json:
        print(json.dumps(summary), file=sys.stderr)
    else:
        print(
            f"{r.prompt_tokens} prompt tokens at {summary['prefill_tokens_per_s']} tokens/s,"
            f" {len(r.tokens)} generated at {summary['decode_tokens_per_s']} tokens/s"
            f" ({model.config.arch}, {model.native.isa}, {summary['threads']} threads; stopped: {r.stop_reason})",
            file=sys.stderr,
        )
    return 0


def _parse_location(spec: str) -> tuple[Path, int, int]:
    path, _, rest = spec.rpartition(":")
    path2, _, line = path.rpartition(":")
    if not path2 or not line.isdigit() or not rest.isdigit() or int(line) < 1 or int(rest) < 1:
        raise ValueError(f"expected FILE:LINE:COL with 1-based line and column, got {spec!r}")
    return Path(path2), int(line), int(rest)


def _cmd_complete(args: argparse.Namespace) -> int:
    from pyserver.completion.pipeline import CompletionPipeline
    from pyserver.engine.host import ModelHost
    from pyserver.server.settings import ServerSettings

    try:
        path, line, col = _parse_location(args.location)
        text = path.read_text(encoding="utf-8")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines = text.split("\n")
    if line > len(lines) or col > len(lines[line - 1]) + 1:
        print(f"error: {path} has no line {line} column {col}", file=sys.stderr)
        return 2
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
    host = ModelHost()
    host.load(args.model or "")
    if host.model is None:
        print(f"error: {host.error}", file=sys.stderr)
        return 2
    engine = CompletionPipeline(host, ServerSettings().completion)
    c = engine.complete(path.resolve().as_uri(), text, offset, lambda: False)
    assert c is not None
    report = {
        "file": str(path),
        "line": line,
        "column": col,
        "before_cursor": lines[line - 1][: col - 1],
        "suggestion": c.text,
        "confidence": round(c.confidence, 3),
        "held_back": c.candidate if c.candidate and not c.text else None,
        "latency_ms": round(c.latency_ms, 1),
        "prompt_tokens": c.prompt_tokens,
        "generated_tokens": c.generated_tokens,
        "model": str(host.model_path),
        "model_load_ms": round(host.model.stats.seconds * 1e3, 1),
    }
    if args.json:
        _emit(report, args)
    elif c.text:
        print(
            f"{report['before_cursor']}\x1b[2m{c.text}\x1b[0m"
            if sys.stdout.isatty()
            else f"{report['before_cursor']}{c.text}"
        )
        print(f"(confidence {c.confidence:.2f}, {c.latency_ms:.0f} ms, {host.model_path})", file=sys.stderr)
    else:
        why = f"held back below the confidence threshold: {c.candidate!r}" if c.candidate else "the model had none"
        print(f"no suggestion ({why}; confidence {c.confidence:.2f})", file=sys.stderr)
    return 0


def _cmd_serve(_args: argparse.Namespace) -> int:
    from pyserver.server.server import serve

    serve()
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from pyserver.server.doctor import doctor

    _emit(doctor(args.model, args.storage), args, "Ryzanstein doctor")
    return 0


def _cmd_setup(args: argparse.Namespace) -> int:
    from pyserver.tiers.setup import run_setup

    _emit(run_setup(args.models_dir or (), write=not args.dry_run, remeasure=args.remeasure), args)
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from pyserver.tiers.download import DownloadError, download_model
    from pyserver.tiers.registry import Registry

    spec = Registry.load().by_id(args.model)
    if spec is None:
        print(f"error: no model {args.model!r} in the registry (see `python -m pyserver models`)", file=sys.stderr)
        return 2

    def report(done: int, total: int) -> None:
        pct = f" ({100 * done / total:5.1f}%)" if total else ""
        sys.stderr.write(f"\r{spec.id}: {done >> 20} of {total >> 20} MiB{pct}")

    try:
        path = download_model(spec, progress=report)
    except KeyboardInterrupt:
        print("\nstopped: the partial download is kept, and the same command resumes it", file=sys.stderr)
        return 130
    except DownloadError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    print(f"\n{spec.id}: {path}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from pyserver.tiers.setup import models_table

    _emit(models_table(args.models_dir or (), measure=not args.no_measure), args)
    return 0


def _cmd_cpu(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pyserver.engine.autotune import cache_path, cached_choices
    from pyserver.native import cpu_info

    report = dict(cpu_info())
    # The meta-backend's table: per shape x packing, the layout picked and each candidate's decode speed.
    report["kernel_choices"] = [asdict(c) for c in cached_choices()] or f"none measured yet ({cache_path()})"
    _emit(report, args)
    return 0


def _inspect_progress(done: int, total: int, name: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{done}/{total} {name:<40}" + ("\n" if done >= total else ""))
        sys.stderr.flush()


def _write_page(html: str, out: Path | None) -> None:
    if out is not None:
        out.write_text(html, encoding="utf-8")
        print(f"report: {out}", file=sys.stderr)


def _cmd_inspect(args: argparse.Namespace) -> int:
    import os

    from pyserver.engine.errors import ModelLoadError
    from pyserver.inspect.model_report import inspect_model, summary
    from pyserver.inspect.weights import Options
    from pyserver.models import default_model_path

    path = Path(args.model) if args.model else default_model_path()
    if path is None:
        print("error: no model given and no shipped model found in models/", file=sys.stderr)
        return 2
    opts = Options(max_queries=args.max_queries, threads=args.threads or os.cpu_count() or 1)
    try:
        report, html = inspect_model(path, opts, vocabulary=not args.no_vocabulary, progress=_inspect_progress)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _write_page(html, Path(args.out) if args.out else None if args.json else Path(f"{path.name}.inspect.html"))
    _emit(report if args.json else summary(report), args)
    return 0


def _cmd_inspect_index(args: argparse.Namespace) -> int:
    from pyserver.index.store import IndexUnavailable
    from pyserver.index.workspace import default_index_path
    from pyserver.inspect.index_report import index_summary, inspect_index

    target = Path(args.path)
    root = target if target.is_dir() else None
    db = Path(args.db) if args.db else default_index_path(target) if root is not None else target
    if not db.is_file():
        print(f"error: no index at {db}: build it with `python -m pyserver index {args.path}`", file=sys.stderr)
        return 2
    try:
        report, html = inspect_index(db, str(root.resolve()) if root is not None else None)
    except IndexUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = (root.resolve().name if root is not None else db.stem) or "index"
    _write_page(html, Path(args.out) if args.out else None if args.json else Path(f"{name}.index.html"))
    _emit(report if args.json else index_summary(report), args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pyserver import __version__

    parser = argparse.ArgumentParser(
        prog="python -m pyserver",
        description="Ryzanstein sidecar and tools (with no"
        " command and no terminal on stdin: the language server on stdio)",
    )
    parser.add_argument("--version", action="version", version=f"ryzanstein {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmarks printing JSON (medians and ratios)")
    bench.add_argument(
        "what",
        choices=[
            "kernels",
            "model",
            "peers",
            "quality",
            "completion",
            "index",
            "speculative",
            "refactors",
            "soak",
            "documents",
            "agreement",
        ],
        help="what to measure (agreement: this engine's logits against llama.cpp's on random Qwen3 files)",
    )
    bench.add_argument(
        "--arch",
        default="bitnet",
        choices=["bitnet", "qwen3"],
        help="peers, speculative: bitnet (BitNet shapes, the default) or qwen3 (Ternary-Bonsai shapes: peers on"
        " Q2_0 and TQ2_0 files, speculative with the 1.7B drafting for the 8B)",
    )
    bench.add_argument(
        "--model",
        action="append",
        default=None,
        help="quality, completion, refactors: the model (default: the shipped model); completion --corpus real"
        " takes several",
    )
    bench.add_argument(
        "--corpus",
        default="stdlib",
        help="completion: stdlib (typing replay over held-out standard-library files), real (pinned"
        " releases of well-known packages, fetched once), or a folder of .py files",
    )
    bench.add_argument("--samples", type=int, default=None, help="completion --corpus: cursor positions per split")
    bench.add_argument(
        "--calibrate",
        action="store_true",
        help="completion --corpus: fit the confidence gate on the calibration split first",
    )
    bench.add_argument(
        "--save-calibration", action="store_true", help="with --calibrate: keep it for the model (user cache)"
    )
    bench.add_argument(
        "--save-beside",
        action="store_true",
        help="with --calibrate: write MODEL.calibration.json beside the model (as the shipped one)",
    )
    bench.add_argument("--quick", action="store_true", help="fewer shapes and repetitions")
    bench.add_argument(
        "--shape",
        default=None,
        choices=[
            "2b4t",
            "large",
            "3b-falcon",
            "7b-falcon",
            "10b-falcon",
            "tiny",
            "bonsai-1.7b",
            "bonsai-4b",
            "bonsai-8b",
            "qwen3-tiny",
        ],
        help="model, peers (default 2b4t; with --arch qwen3 bonsai-1.7b), agreement (default bonsai-1.7b): the real"
        " checkpoint shape to build with random weights; completion, soak: a random model of this shape with a code"
        " vocabulary (completion: its latency)",
    )
    bench.add_argument(
        "--latency",
        action="store_true",
        help="completion: time to suggestion on --model (cold, after a cursor rest, per keystroke)",
    )
    bench.add_argument("--rest", type=float, default=3.0, help="completion --latency: seconds the cursor rests")
    bench.add_argument(
        "--format",
        default="I2_S",
        choices=["I2_S", "TQ2_0", "TQ1_0"],
        help="model: the ternary packing of the projections",
    )
    bench.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    bench.add_argument(
        "--variant",
        nargs="+",
        default=None,
        help="peers: which files (tq2_0-f16 tq2_0-q6_k tq1_0-f16 tq1_0-q6_k; with --arch qwen3 tq2_0 q2_0; default"
        " all); agreement: which of f16 q2_0 tq2_0 (default: all)",
    )
    bench.add_argument("--pp", type=int, default=128, help="peers: prompt tokens of the prefill timed")
    bench.add_argument("--tg", type=int, default=64, help="peers: decode steps timed")
    bench.add_argument("--positions", type=int, default=256, help="agreement: positions whose logits are compared")
    bench.add_argument(
        "--layout",
        nargs="+",
        default=None,
        choices=["auto", "decode", "file"],
        help="peers: this engine's weight layouts to time (default: auto, the autotuner's choice)",
    )
    bench.add_argument(
        "--isa",
        nargs="+",
        default=None,
        help="peers: this engine's ISA levels to time (default: every SIMD level the CPU has)",
    )
    bench.add_argument("--no-scalar", action="store_true", help="skip the (slow) scalar reference path")
    bench.add_argument("--mb", type=float, default=20.0, help="documents: the document's size in MB")
    bench.add_argument("--keystrokes", type=int, default=200, help="documents: keystrokes at each of three places")
    bench.add_argument("--minutes", type=float, default=10.0, help="soak: how long to type into the sidecar")
    bench.add_argument(
        "--rate", type=float, default=None, help="soak: keystrokes (each with a completion) per second (3.33: 300 ms)"
    )
    bench.set_defaults(func=_cmd_bench)

    api = sub.add_parser(
        "api", help="an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)"
    )
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument("--model", default=None, help="a model file (default: the shipped model)")
    api.add_argument("--api-key", default=None, help="require this key (also RYZANSTEIN_API_KEY)")
    api.add_argument("--threads", type=int, default=0, help="engine threads (default: all cores)")
    api.set_defaults(func=_cmd_api)

    cc = sub.add_parser("continue-config", help="point Continue.dev's config at the local API (merged, idempotent)")
    cc.add_argument("--path", default=None, help="the config file (default: ~/.continue/config.yaml)")
    cc.add_argument("--host", default="127.0.0.1")
    cc.add_argument("--port", type=int, default=8080)
    cc.add_argument("--model-id", default="ryzanstein-code", help="the model id the API serves")
    cc.add_argument("--api-key", default=None)
    cc.set_defaults(func=_cmd_continue_config)

    mcp = sub.add_parser("mcp", help="a Model Context Protocol server on stdio over a folder's index and the model")
    mcp.add_argument("--root", default=".", help="the workspace folder (default: the current directory)")
    mcp.set_defaults(func=_cmd_mcp)

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
    gen.add_argument("--json", action="store_true", help="the summary on stderr as JSON")
    gen.set_defaults(func=_cmd_generate)

    comp = sub.add_parser("complete", help="the completion the server would show at FILE:LINE:COL (1-based)")
    comp.add_argument("location", help="FILE:LINE:COL")
    comp.add_argument("--model", default=None, help="model file (default: the shipped model)")
    comp.add_argument("--json", action="store_true", help="print JSON (suggestion, confidence, latency, model)")
    comp.set_defaults(func=_cmd_complete)

    srv = sub.add_parser("serve", help="run the language server on stdio (the default with no command)")
    srv.set_defaults(func=_cmd_serve)

    doc = sub.add_parser("doctor", help="what the server would do on this machine, and why")
    doc.add_argument("--model", default=None, help="model file to check (default: the shipped model)")
    doc.add_argument("--storage", default="", help="the sidecar's storage folder (the extension passes its own)")
    doc.add_argument("--json", action="store_true", help="print JSON")
    doc.add_argument("--markdown", action="store_true", help="print Markdown (the editor's rendered report)")
    doc.set_defaults(func=_cmd_doctor)

    cpu = sub.add_parser("cpu", help="CPU features, dispatch level and SIMD self-check")
    cpu.add_argument("--json", action="store_true", help="print JSON")
    cpu.set_defaults(func=_cmd_cpu)

    ins = sub.add_parser(
        "inspect", help="read a ternary model's weights: trits, density, signatures, redundancy (HTML + JSON)"
    )
    ins.add_argument(
        "model", nargs="?", default=None, help="GGUF file or checkpoint folder (default: the shipped model)"
    )
    ins.add_argument("--out", default=None, help="the HTML report (default: MODEL.inspect.html here; none with --json)")
    ins.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ins.add_argument("--threads", type=int, default=0, help="threads for the signature scans (default: all cores)")
    ins.add_argument(
        "--max-queries", type=int, default=1 << 13, help="near-duplicate queries per tensor (more rows: a sample)"
    )
    ins.add_argument("--no-vocabulary", action="store_true", help="skip the token embedding's clusters")
    ins.set_defaults(func=_cmd_inspect)

    ixi = sub.add_parser("inspect-index", help="the workspace index's clusters, scans and languages (HTML + JSON)")
    ixi.add_argument("path", help="a workspace folder (its index) or an index file")
    ixi.add_argument("--db", default=None, help="the folder's index file (default: the one `index` uses)")
    ixi.add_argument("--out", default=None, help="the HTML report (default: FOLDER.index.html here; none with --json)")
    ixi.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ixi.set_defaults(func=_cmd_inspect_index)

    from pyserver.index.cli import add_parsers

    add_parsers(sub)

    setup = sub.add_parser("setup", help="profile the machine, find models, choose tiers; writes the config")
    setup.add_argument("--models-dir", action="append", help="another folder with model files (repeatable)")
    setup.add_argument("--remeasure", action="store_true", help="measure memory bandwidth again")
    setup.add_argument("--dry-run", action="store_true", help="print the decision without writing the config")
    setup.add_argument("--json", action="store_true", help="print JSON")
    setup.set_defaults(func=_cmd_setup)

    dl = sub.add_parser("download", help="download a registry model (only ever on request) into the models folder")
    dl.add_argument("model", help="a registry model id (see `python -m pyserver models`)")
    dl.set_defaults(func=_cmd_download)

    models = sub.add_parser("models", help="the tiers, which models are here, and what would be chosen")
    models.add_argument("--models-dir", action="append", help="another folder with model files (repeatable)")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.add_argument(
        "--no-measure",
        action="store_true",
        help="do not measure this machine now (the last measurement, else a provisional guess of the speeds)",
    )
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv and sys.stdin.isatty():  # a person at a terminal, not an editor: say what there is
        build_parser().print_help()
        return 0
    args = build_parser().parse_args(argv or ["serve"])
    try:
        return int(args.func(args))
    except ValueError as exc:
        # A bad model file, from any command that loads one (generate, bench, api, ...): one line, exit code 2, no
        # traceback. The class is looked up only now, so a command that never loads the engine does not import it.
        errors = sys.modules.get("pyserver.engine.errors")
        if errors is None or not isinstance(exc, errors.ModelLoadError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
