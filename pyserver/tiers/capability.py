"""The capability gate: refactors a model is measured too weak for (models/registry.json `weak_tasks`, from
`python -m pyserver bench refactors`) are refused for it, with an offer of a larger model, instead of writing junk.
A model the registry does not know is never gated: there is no measurement to go on."""

from __future__ import annotations

from pathlib import Path

from pyserver.tiers.registry import Registry

GATE_RATE = 0.25  # a task with fewer useful answers than this is gated for the model
# The gate's tasks: the refactors `bench refactors` measures (docstring covers Add and Update Docstring).
WHAT = {"docstring": "write docstrings", "explain": "explain code", "rewrite": "rewrite code", "tests": "write tests"}


def weakness(model_path: Path | None, task: str, registry: Registry | None = None) -> str | None:
    """Why the model at model_path should not do `task`, or None."""
    if model_path is None:
        return None
    try:
        spec = (registry or Registry.load()).by_file(model_path.name)
    except (OSError, ValueError):
        return None
    rate = dict(spec.weak_tasks).get(task) if spec is not None else None
    if spec is None or rate is None or rate >= GATE_RATE:
        return None
    return (
        f"{spec.name} is too small to {WHAT.get(task, task)} well: {rate:.0%} of its answers were useful on code "
        "it never saw (python -m pyserver bench refactors). Choose a larger model, or try anyway."
    )
