"""Continue's config, written by us: merged into what is there, idempotent, and accepted by Continue's own parser
(@continuedev/config-yaml from npm, run with node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pyserver.api.continue_config import MODEL_NAME, write_continue_config

ROOT = Path(__file__).resolve().parents[2]
PARSER = ROOT / "node_modules" / "@continuedev" / "config-yaml"
THEIRS = """name: My setup
version: 0.0.2
schema: v1
models:
  - name: Remote Claude
    provider: anthropic
    model: claude-sonnet
    roles: [chat]
context:
  - provider: code
"""


def _continue_parses(path: Path) -> list[dict[str, object]]:
    script = (
        "const c = require('@continuedev/config-yaml');"
        "const r = c.parseConfigYaml(require('fs').readFileSync(process.argv[1], 'utf8'));"
        "console.log(JSON.stringify(r.models.map(m => ({name: m.name, provider: m.provider, model: m.model,"
        " apiBase: m.apiBase, roles: m.roles}))));"
    )
    out = subprocess.run(["node", "-e", script, str(path)], cwd=ROOT, capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


def test_merged_into_an_existing_config_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(THEIRS)
    write_continue_config("http://127.0.0.1:8080/v1", "ryzanstein-code", None, path)
    first = path.read_text()
    write_continue_config("http://127.0.0.1:8080/v1", "ryzanstein-code", None, path)
    assert path.read_text() == first
    data = yaml.safe_load(first)
    assert data["name"] == "My setup" and data["context"] == [{"provider": "code"}]
    assert [m["name"] for m in data["models"]] == [MODEL_NAME, "Remote Claude"]
    ours = data["models"][0]
    assert ours == {
        "name": MODEL_NAME,
        "provider": "openai",
        "model": "ryzanstein-code",
        "apiBase": "http://127.0.0.1:8080/v1",
        "roles": ["chat", "edit", "autocomplete"],
    }


@pytest.mark.skipif(shutil.which("node") is None or not PARSER.is_dir(), reason="node or Continue's parser missing")
def test_continue_accepts_it(tmp_path: Path) -> None:
    fresh = write_continue_config("http://127.0.0.1:9000/v1", "m", "k", tmp_path / "new" / "config.yaml")
    merged = tmp_path / "config.yaml"
    merged.write_text(THEIRS)
    write_continue_config("http://127.0.0.1:9000/v1", "m", None, merged)
    assert _continue_parses(fresh) == [
        {
            "name": MODEL_NAME,
            "provider": "openai",
            "model": "m",
            "apiBase": "http://127.0.0.1:9000/v1",
            "roles": ["chat", "edit", "autocomplete"],
        }
    ]
    assert [m["name"] for m in _continue_parses(merged)] == [MODEL_NAME, "Remote Claude"]


def test_a_file_that_is_not_a_mapping_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="not a YAML mapping"):
        write_continue_config(path=path)
    assert path.read_text() == "- just\n- a list\n"
