"""`python -m pyserver doctor`: what the server would do on this machine and why, without starting it."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from pyserver.engine.machine import cpu_model
from pyserver.models import default_model_path, shipped_model_dirs
from pyserver.server.acceptance import AcceptanceStats, storage_folder
from pyserver.server.outcomes import read as read_outcomes

if TYPE_CHECKING:  # the engine (and with it the native module) is imported only where a model is read
    from pyserver.engine.tokenizer import Tokenizer
    from pyserver.engine.traits import ModelTraits


def doctor(model: str | None = None, storage: str = "") -> dict[str, Any]:
    report: dict[str, Any] = {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "ok": sys.version_info >= (3, 10),
        },
        "machine": {
            "cpu": cpu_model(),
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
                    **(prompts(m.tokenizer, m.traits) if m.tokenizer is not None else {}),
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
            "first_download": cfg.get("decision", {}).get("first_download"),
            "reasons": cfg.get("decision", {}).get("reasons", []),
            "serving": _serving(cfg) if report["native"]["ok"] else {},
        }
        if cfg
        else {"config": None, "decision": "not run yet: `python -m pyserver setup` picks the tier"}
    )
    from pyserver.tiers.hardware import measurement_summary

    speed = measurement_summary()
    report["speed_measurement"] = speed["text"] if speed else "not measured yet (the sidecar measures when idle)"
    report["acceptance"] = AcceptanceStats(storage_folder(storage)).summary()
    report["completions"] = read_outcomes(storage_folder(storage))
    return report


def prompts(tok: Tokenizer, traits: ModelTraits) -> dict[str, str]:
    """How this model is prompted: completions (fill-in-the-middle or the prefix alone) and refactors (through a
    ChatML template with thinking off, or the code itself)."""
    from pyserver.completion.prompt import prompt_mode
    from pyserver.engine.chat_template import ChatMarkers, is_chatml, knows_thinking

    if is_chatml(traits.chat_template) and ChatMarkers.of(tok) is not None:
        refactor = "chat template (ChatML" + (", thinking off)" if knows_thinking(traits.chat_template) else ")")
    else:
        refactor = "the code itself, " + ("fill-in-the-middle" if tok.special.has_fim else "prefix only")
    return {"completion_prompt": prompt_mode(tok, traits.fim_order), "refactor_prompt": refactor}


def _serving(cfg: dict[str, Any]) -> dict[str, Any]:
    """The setup's completion and refactor models as their files' headers describe them (no weights loaded)."""
    from pyserver.engine.errors import ModelLoadError
    from pyserver.engine.gguf_file import GGUFFile
    from pyserver.engine.tokenizer import Tokenizer
    from pyserver.engine.traits import ModelTraits

    decision, paths = cfg.get("decision", {}), cfg.get("model_paths", {})
    out: dict[str, Any] = {}
    for task, key in (("completions", "completion_model"), ("refactors", "refactor_model")):
        model_id = decision.get(key)
        path = paths.get(model_id) if isinstance(paths, dict) else None
        entry: dict[str, Any] = {"model": model_id, "path": path}
        if isinstance(path, str) and path.endswith(".gguf") and Path(path).is_file():
            try:
                meta = GGUFFile(Path(path)).metadata
                entry.update(
                    arch=meta.get("general.architecture"),
                    **prompts(Tokenizer.from_gguf_metadata(meta, path), ModelTraits.from_gguf_metadata(meta)),
                )
            except (ModelLoadError, OSError, ValueError) as exc:
                entry["error"] = str(exc)
        out[task] = entry
    return out


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
