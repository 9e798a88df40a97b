"""Which model files the sidecar serves, from its settings and the setup's decision (the config file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyserver.models import default_model_path
from pyserver.tiers.registry import Registry


@dataclass
class ServingPlan:
    completion: Path | None  # None: the shipped model
    large: Path | None  # the refactor / escalation model, when it differs from the completion model
    reasons: list[str] = field(default_factory=list)


def serving_plan(
    model_path: str, tier: str, config: dict[str, Any] | None, registry: Registry | None = None
) -> ServingPlan:
    if model_path:
        return ServingPlan(Path(model_path), None, ["ryzanstein.modelPath is set: it serves every task"])
    if config is None:
        return ServingPlan(
            default_model_path(), None, ["no setup decision yet (`python -m pyserver setup`): the shipped model serves"]
        )
    paths: dict[str, str] = config.get("model_paths", {})
    decision: dict[str, Any] = config.get("decision", {})
    if tier not in ("", "auto"):
        registry = registry or Registry.load()
        ids = [m.id for m in registry.tier(tier)]
        present = [i for i in ids if i in paths]
        if tier == "shipped" or not present:
            why = f"tier {tier} chosen in the settings" + (
                ""
                if tier == "shipped"
                else f", but none of its models ({', '.join(ids)}) is here: the shipped model serves"
            )
            return ServingPlan(default_model_path(), None, [why])
        return ServingPlan(Path(paths[present[0]]), None, [f"tier {tier} chosen in the settings: {present[0]}"])
    comp_id, large_id = decision.get("completion_model"), decision.get("refactor_model")
    completion = Path(paths[comp_id]) if comp_id in paths else default_model_path()
    large = Path(paths[large_id]) if large_id in paths and large_id != comp_id else None
    reasons = [
        f"completions: {comp_id if comp_id in paths else 'the shipped model'}",
        f"refactors and uncertain completions: {large_id if large else 'the same model'}",
    ]
    return ServingPlan(completion, large, reasons)
