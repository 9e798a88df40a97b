"""The READMEs say what the product has: their palette lists are the manifest's (every command a user can run from
the palette, package.json's contributes.commands less those hidden from it, by its title, and nothing else), and
their tier sizes are the registry's (what the model picker shows)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyserver.tiers.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
READMES = ["README.md", "extension/README.md"]
BEGIN, END = "<!-- palette: tested against package.json (tests/test_readmes.py) -->", "<!-- /palette -->"


def palette_titles() -> set[str]:
    manifest = json.loads((ROOT / "package.json").read_text())
    hidden = {m["command"] for m in manifest["contributes"]["menus"]["commandPalette"] if m.get("when") == "false"}
    return {c["title"] for c in manifest["contributes"]["commands"] if c["command"] not in hidden}


def listed(readme: str) -> set[str]:
    text = (ROOT / readme).read_text()
    assert BEGIN in text and END in text, f"{readme} has no palette list"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return set(re.findall(r"^\| \*([^*|]+)\* \|", block, re.M))


@pytest.mark.parametrize("readme", READMES)
def test_the_palette_list_is_the_manifests(readme: str) -> None:
    assert listed(readme) == palette_titles()


def test_the_tier_table_has_the_pickers_sizes() -> None:
    """extension/README.md's tier table: each model's download as the picker rounds it (modelText.ts: one decimal
    in GB)."""
    text = (ROOT / "extension" / "README.md").read_text()
    for m in Registry.load().models:
        if m.tier == "shipped":
            continue
        size = f"{m.summary(2048)['approx_download_bytes'] / 1e9:.1f} GB"
        row = next((ln for ln in text.split("\n") if ln.startswith("| ") and m.name in ln), None)
        assert row is not None and size in row, (m.name, size, row)
