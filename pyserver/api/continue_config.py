"""Continue.dev, configured by us: `python -m pyserver continue-config` writes (or merges into) Continue's
`~/.continue/config.yaml` a model served by the local OpenAI-compatible API (`python -m pyserver api`) for its
chat, edit and autocomplete roles. Everything else in the file is kept; our entry is found again by its name and
replaced, so running it twice changes nothing. A file that is not a YAML mapping is left alone (an error says so).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

MODEL_NAME = "Ryzanstein (local)"
ROLES = ["chat", "edit", "autocomplete"]


def default_path() -> Path:
    return Path(os.environ.get("CONTINUE_GLOBAL_DIR") or Path.home() / ".continue") / "config.yaml"


def model_entry(api_base: str, model_id: str, api_key: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": MODEL_NAME,
        "provider": "openai",
        "model": model_id,
        "apiBase": api_base,
        "roles": list(ROLES),
    }
    if api_key:
        entry["apiKey"] = api_key
    return entry


def merge(existing: dict[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = dict(existing or {})
    config.setdefault("name", "Local config")
    config.setdefault("version", "1.0.0")
    config.setdefault("schema", "v1")
    models = [m for m in config.get("models") or [] if not (isinstance(m, dict) and m.get("name") == MODEL_NAME)]
    config["models"] = [entry, *models]
    return config


def write_continue_config(
    api_base: str = "http://127.0.0.1:8080/v1",
    model_id: str = "ryzanstein-code",
    api_key: str | None = None,
    path: Path | None = None,
) -> Path:
    path = path or default_path()
    existing: Any = None
    if path.is_file():
        try:
            existing = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML ({exc}); left as it is") from exc
        if existing is not None and not isinstance(existing, dict):
            raise ValueError(f"{path} is not a YAML mapping; left as it is")
    config = merge(existing, model_entry(api_base, model_id, api_key))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, path)
    return path
