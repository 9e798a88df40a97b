"""`python -m pyserver doctor`: what the server would do on this machine and why, without starting it."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import psutil

from pyserver.models import default_model_path, shipped_model_dirs
from pyserver.server.acceptance import AcceptanceStats, storage_folder


def doctor(model: str | None = None, storage: str = "") -> dict[str, Any]:
    report: dict[str, Any] = {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "ok": sys.version_info >= (3, 10),
        },
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "ram_total_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "ram_available_gib": round(psutil.virtual_memory().available / 2**30, 1),
        },
    }
    try:
        from pyserver.native import cpu_info

        info = cpu_info()
        report["native"] = {
            "ok": True,
            "isa": info["auto"],
            "self_check": info["self_check"],
            "threads": info["threads"],
        }
    except ImportError as exc:
        report["native"] = {"ok": False, "error": str(exc), "fix": "run `make install` (or pip install the wheel)"}
    path = Path(model) if model else default_model_path()
    if path is None:
        report["model"] = {
            "found": False,
            "searched": [str(d) for d in shipped_model_dirs()],
            "decision": "completions stay off until a model is configured (ryzanstein.modelPath)",
        }
    else:
        entry: dict[str, Any] = {"found": path.exists(), "path": str(path)}
        if path.exists() and report["native"]["ok"]:
            from pyserver.engine import Model, ModelLoadError

            try:
                m = Model.load(path)
                entry.update(
                    arch=m.config.arch,
                    params=m.config.n_params,
                    load_seconds=round(m.stats.seconds, 3),
                    bytes_per_token=m.stats.bytes_per_token,
                    fim=bool(m.tokenizer and m.tokenizer.special.has_fim),
                    fim_order=m.traits.fim_order,
                    languages=list(m.traits.languages) or "any",
                    confidence_gate=_gate(path),
                    decision="serve inline completions and refactors with this model",
                )
            except ModelLoadError as exc:
                entry.update(error=str(exc), decision="cannot serve: fix or replace the model file")
        report["model"] = entry
    from pyserver.tiers.setup import config_path, read_config

    cfg = read_config()
    report["setup"] = (
        {
            "config": str(config_path()),
            "decision": cfg.get("decision", {}).get("tier"),
            "model": cfg.get("decision", {}).get("model"),
            "use_now": cfg.get("decision", {}).get("use_now"),
            "reasons": cfg.get("decision", {}).get("reasons", []),
        }
        if cfg
        else {"config": None, "decision": "not run yet: `python -m pyserver setup` picks the tier"}
    )
    report["acceptance"] = AcceptanceStats(storage_folder(storage)).summary()
    return report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gate(path: Path) -> dict[str, Any]:
    from pyserver.completion.calibration import load_gate

    gate = load_gate(path)
    if not gate.calibrated:
        return {
            "calibrated": False,
            "note": "confidence = geometric mean of the chosen tokens' probabilities; "
            "`python -m pyserver bench completion --corpus real --calibrate --save-calibration` calibrates it",
        }
    return {"calibrated": True, "threshold": gate.threshold}
