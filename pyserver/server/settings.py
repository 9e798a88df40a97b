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
    languages: tuple[tuple[str, bool], ...] = (
        ("*", True),
        ("markdown", False),
        ("plaintext", False),
        ("scminput", False),
    )
    trigger: str = "automatic"  # automatic | manual (suggestions only when asked for, e.g. Alt+\\)
    log_prompts: bool = False  # the completion log line also holds the prompt and the suggestion (document text)
    # The remote tier (pyserver/tiers/remote.py): an OpenAI-compatible server; empty: nothing is ever sent anywhere.
    remote_url: str = ""
    remote_api_key: str = ""  # empty: $RYZANSTEIN_REMOTE_API_KEY, else none
    remote_model: str = ""  # empty: the first model the server lists
    remote_fim: bool = False  # the server fills the middle (`suffix`): uncertain completions go to it too

    @property
    def completion(self) -> CompletionSettings:
        return CompletionSettings(
            max_tokens=self.max_tokens,
            max_lines=self.max_lines,
            max_prompt_tokens=self.max_prompt_tokens,
            context_chars=self.context_chars,
            time_budget_ms=self.time_budget_ms,
            min_confidence=self.min_confidence,
        )

    def language_enabled(self, language_id: str) -> bool:
        table = dict(self.languages)
        return table.get(language_id.lower(), table.get("*", True))

    def updated(self, values: dict[str, Any] | None) -> ServerSettings:
        """A copy with known keys (camelCase or snake_case) taken from values; bad values and unknown keys are left
        out (`checked` says which, for the user)."""
        return self.checked(values)[0]

    def checked(self, values: dict[str, Any] | None) -> tuple[ServerSettings, list[str]]:
        """(the updated copy, what was left out and why: one line per setting, for the user)."""
        if not values:
            return self, []
        changes: dict[str, Any] = {}
        problems: list[str] = []
        known: set[str] = set()
        for f in fields(self):
            camel = "".join(w.capitalize() if i else w for i, w in enumerate(f.name.split("_")))
            known |= {f.name, camel}
            for key in dict.fromkeys((f.name, camel)):  # (one key when the name is one word)
                if key in values:
                    value, why = _parse(f.name, getattr(self, f.name), values[key])
                    if why:
                        problems.append(f"{camel}: {why} (got {values[key]!r}); keeping {getattr(self, f.name)!r}")
                    else:
                        changes[f.name] = value
        problems += [f"{k}: not a Ryzanstein setting" for k in values if k not in known]
        return replace(self, **changes), problems


def _parse(name: str, default: Any, v: Any) -> tuple[Any, str]:
    """(the value, "") or (None, why it is refused)."""
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if name == "min_confidence":
        if v is None or (number and 0 <= v <= 1):
            return (None if v is None else float(v)), ""
        return None, "needs a number from 0 to 1, or nothing for the calibrated threshold"
    if name == "languages":
        if isinstance(v, dict) and all(isinstance(x, bool) for x in v.values()):
            return tuple((str(k).lower(), bool(x)) for k, x in v.items()), ""
        return None, 'needs an object of language ids to true/false, e.g. {"*": true, "markdown": false}'
    if name == "remote_url":
        ok = isinstance(v, str) and (v == "" or v.startswith(("http://", "https://")))
        return (v.strip(), "") if ok else (None, "needs an http:// or https:// URL, or nothing")
    if name == "trigger":
        return (v, "") if v in ("automatic", "manual") else (None, 'needs "automatic" or "manual"')
    if isinstance(default, tuple):
        if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
            return tuple(v), ""
        return None, "needs a list of strings"
    if isinstance(default, bool):
        return (v, "") if isinstance(v, bool) else (None, "needs true or false")
    if isinstance(default, int):
        if number and v >= 0:
            return int(v), ""
        return None, "needs a number >= 0"
    return (v, "") if isinstance(v, str) else (None, "needs a string")
