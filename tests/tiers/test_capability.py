"""The capability gate reads the measured useful rates in the registry; models it does not know are never gated."""

from __future__ import annotations

import json
from pathlib import Path

from pyserver.bench.refactors import Case, content_words, useful
from pyserver.models import default_model_path
from pyserver.tiers.capability import GATE_RATE, weakness
from pyserver.tiers.registry import Registry, registry_path


def test_the_shipped_model_is_gated_for_what_it_was_measured_weak_at() -> None:
    registry = Registry.load()
    spec = registry.by_file(default_model_path().name)
    assert spec is not None and spec.tier == "shipped"
    rates = dict(spec.weak_tasks)
    assert rates["docstring"] < GATE_RATE and rates["explain"] < GATE_RATE
    why = weakness(default_model_path(), "docstring", registry)
    assert why is not None and f"{rates['docstring']:.0%} of its answers" in why and "larger model" in why
    assert weakness(default_model_path(), "tests", registry) is not None  # every refactor kind is measured
    assert weakness(default_model_path(), "rewrite", registry) is not None
    assert weakness(default_model_path(), "no-such-task", registry) is None  # not measured: not gated
    assert weakness(Path("/models/my-own.gguf"), "docstring", registry) is None  # unknown model
    assert weakness(None, "docstring", registry) is None


def test_a_rate_at_the_threshold_is_not_gated(tmp_path: Path) -> None:
    data = json.loads(registry_path().read_text())
    data["tiers"]["shipped"][0]["weak_tasks"] = {"docstring": GATE_RATE, "explain": GATE_RATE - 0.01}
    (tmp_path / "r.json").write_text(json.dumps(data))
    registry = Registry.load(tmp_path / "r.json")
    assert weakness(default_model_path(), "docstring", registry) is None
    assert weakness(default_model_path(), "explain", registry) is not None


def test_useful_needs_words_beyond_the_signature() -> None:
    reference = "Encode the message's payload in Base64."
    case = Case("m.py:encode_base64", "", 1, "def encode_base64(msg):\n    pass", reference)
    assert content_words("Encode the payload, in BASE64!") == {"encode", "payload", "base"}
    assert not useful("Encode the base64 encoded string.", case)  # only the name's own words
    assert useful("Replace the message payload with its base64 form.", case)  # "message", "payload"
