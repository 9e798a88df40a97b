"""Server settings: one dataclass with defaults; the extension forwards `ryzanstein.*` settings as a dict."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from pyserver.completion.settings import CompletionSettings


@dataclass(frozen=True)
class ServerSettings:
    enable: bool = True
    model_path: str = ""  # empty: the shipped model
    threads: int = 0  # 0: every core
    max_tokens: int = 64  # per completion
    max_lines: int = 8
    max_prompt_tokens: int = 1024
    context_chars: int = 1500  # extra context from other documents
    time_budget_ms: int = 1500  # a suggestion that arrives later is worth nothing
    refactor_max_tokens: int = 256
    index_enable: bool = True  # the workspace index (completion context, search)
    index_include: tuple[str, ...] = ()  # globs; empty: everything not excluded
    index_exclude: tuple[str, ...] = ()
    storage_path: str = ""  # where index files go (the extension's storage); empty: ~/.cache/ryzanstein
    tier: str = "auto"  # auto (the setup's choice) | shipped | 3B | 7B | 13B
    model_folders: tuple[str, ...] = ()  # more places the setup looks for model files
    unload_idle_minutes: int = 15  # a model unused this long is unloaded (and loaded again when needed); 0: never
    escalation: bool = True  # uncertain completions go to the larger tier when it is loaded and idle
    min_confidence: float | None = None  # None: the model's calibrated threshold; 0 shows every suggestion
    # Per VS Code language id, "*" for the rest; a language the model was not trained on gets nothing either way.
    languages: tuple[tuple[str, bool], ...] = (("*", True), ("markdown", False), ("plaintext", False),
                                               ("scminput", False))
    trigger: str = "automatic"  # automatic | manual (suggestions only when asked for, e.g. Alt+\\)

    @property
    def completion(self) -> CompletionSettings:
        return CompletionSettings(max_tokens=self.max_tokens, max_lines=self.max_lines,
                                  max_prompt_tokens=self.max_prompt_tokens, context_chars=self.context_chars,
                                  time_budget_ms=self.time_budget_ms, min_confidence=self.min_confidence)

    def language_enabled(self, language_id: str) -> bool:
        table = dict(self.languages)
        return table.get(language_id.lower(), table.get("*", True))

    def updated(self, values: dict[str, Any] | None) -> ServerSettings:
        """A copy with known keys (camelCase or snake_case) taken from values; unknown keys and bad types ignored."""
        if not values:
            return self
        changes: dict[str, Any] = {}
        for f in fields(self):
            camel = "".join(w.capitalize() if i else w for i, w in enumerate(f.name.split("_")))
            for key in (f.name, camel):
                if key in values:
                    v = values[key]
                    default = getattr(self, f.name)
                    if f.name == "min_confidence":
                        if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
                            changes[f.name] = None if v is None else float(v)
                    elif f.name == "languages":
                        if isinstance(v, dict) and all(isinstance(x, bool) for x in v.values()):
                            changes[f.name] = tuple((str(k).lower(), bool(x)) for k, x in v.items())
                    elif f.name == "trigger":
                        if v in ("automatic", "manual"):
                            changes[f.name] = v
                    elif isinstance(default, tuple):
                        if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
                            changes[f.name] = tuple(v)
                    elif isinstance(default, bool):
                        if isinstance(v, bool):
                            changes[f.name] = v
                    elif isinstance(default, int):
                        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
                            changes[f.name] = int(v)
                    elif isinstance(v, str):
                        changes[f.name] = v
        return replace(self, **changes)
