"""`python -m pyserver setup`: profile the machine, find the models already here, choose, and write the decision
(with its reasons) to the config file that the sidecar and `pyserver doctor` read."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pyserver.tiers.discovery import FoundModel, discover, known_folders
from pyserver.tiers.hardware import GIB, HardwareProfile, profile
from pyserver.tiers.registry import Registry
from pyserver.tiers.selection import choose, ram_budget


def config_path() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "ryzanstein" / "config.json"


def read_config(path: Path | None = None) -> dict[str, Any] | None:
    try:
        data = json.loads((path or config_path()).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def plan(registry: Registry, hw: HardwareProfile, found: list[FoundModel]) -> dict[str, Any]:
    present = {f.registry_id for f in found if f.registry_id}
    decision = choose(registry, hw, present)
    paths = {f.registry_id: str(f.path) for f in found if f.registry_id}
    return {
        "hardware": hw.to_json() | {"ram_budget_gib": round(ram_budget(hw) / GIB, 2)},
        "decision": decision.to_json(),
        "model_paths": paths,
        "found": [f.to_json() for f in found],
    }


def run_setup(
    folders: Iterable[str | Path] = (),
    write: bool = True,
    remeasure: bool = False,
    measure: bool = True,
    busy: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """measure=False: no speed measurement now (the cached one, else a provisional profile whose
    hardware.measured is False): for the editor's start-up; run it again with measure=True once things are quiet
    (`busy`: the caller's own work, waited out during the measurement)."""
    registry = Registry.load()
    hw = profile(remeasure=remeasure, measure=measure, busy=busy)
    found, problems = discover(known_folders(folders), registry)
    out = plan(registry, hw, found) | {"problems": problems, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if write:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=2))
        os.replace(tmp, path)
        out["config"] = str(path)
    return out


def models_table(folders: Iterable[str | Path] = (), measure: bool = True) -> dict[str, Any]:
    """`python -m pyserver models`: every tier's models, which are here, what each needs, what would be chosen."""
    registry = Registry.load()
    hw = profile(measure=measure)
    found, problems = discover(known_folders(folders), registry)
    p = plan(registry, hw, found)
    cands = {c["id"]: c for c in p["decision"]["candidates"]}
    tiers: dict[str, list[dict[str, Any]]] = {}
    for m in registry.models:
        row = m.summary(min(m.context_length, 2048)) | cands[m.id]
        row["path"] = p["model_paths"].get(m.id)
        tiers.setdefault(m.tier, []).append(row)
    return {
        "tiers": tiers,
        "would_choose": {
            k: p["decision"][k]
            for k in ("tier", "model", "use_now", "first_download", "completion_model", "refactor_model")
        },
        "unregistered_models_found": [f for f in p["found"] if not f["registry_id"]],
        "problems": problems,
        "measured": hw.measured,
    }
