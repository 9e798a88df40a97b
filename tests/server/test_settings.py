"""Settings: parsed from the client's values, and the same defaults as the extension's manifest declares."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from pyserver.server.settings import ServerSettings

MANIFEST = Path(__file__).resolve().parents[2] / "package.json"


def camel(name: str) -> str:
    return "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_")))


def test_new_settings_parse_and_reject_bad_values() -> None:
    s = ServerSettings().updated({"minConfidence": 0.25, "languages": {"Go": False, "*": True}, "trigger": "manual"})
    assert s.min_confidence == 0.25 and s.trigger == "manual"
    assert not s.language_enabled("go") and s.language_enabled("python")
    assert ServerSettings().updated({"minConfidence": None}).min_confidence is None
    bad = ServerSettings().updated({"minConfidence": 3, "languages": {"go": "no"}, "trigger": "sometimes"})
    assert bad == ServerSettings()


def test_default_languages() -> None:
    s = ServerSettings()
    assert s.language_enabled("python") and s.language_enabled("rust")
    assert not s.language_enabled("markdown") and not s.language_enabled("plaintext")


def test_defaults_agree_with_the_manifest() -> None:
    props = json.loads(MANIFEST.read_text())["contributes"]["configuration"]["properties"]
    checked = 0
    for f in fields(ServerSettings):
        key = (
            f"ryzanstein.{camel(f.name)}"
            if not f.name.startswith("index_")
            else f"ryzanstein.index.{f.name.removeprefix('index_')}"
        )
        if key not in props:
            continue
        default = getattr(ServerSettings(), f.name)
        declared = props[key]["default"]
        if f.name == "languages":
            declared = tuple(declared.items())
        elif isinstance(default, tuple):
            declared = tuple(declared)
        assert declared == default, key
        checked += 1
    assert checked >= 13


def test_left_out_settings_say_why() -> None:
    s, problems = ServerSettings().checked({"maxTokens": "lots", "threads": 2, "trigger": "often", "colour": "red"})
    assert s == ServerSettings(threads=2)  # the good one taken, the rest left as they were
    assert problems == [
        "maxTokens: needs a number >= 0 (got 'lots'); keeping 64",
        "trigger: needs \"automatic\" or \"manual\" (got 'often'); keeping 'automatic'",
        "colour: not a Ryzanstein setting",
    ]
    assert ServerSettings().checked({"threads": 1}) == (ServerSettings(threads=1), [])
