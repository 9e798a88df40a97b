"""What the completion pipeline reads of the settings. The values and their defaults live in the server's
`ServerSettings` (one home, surfaced once in package.json); `ServerSettings.completion` makes this from them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CompletionSettings:
    max_tokens: int  # per completion
    max_lines: int
    max_prompt_tokens: int
    context_chars: int  # extra context from other documents
    time_budget_ms: int
    min_confidence: float | None  # None: the model's calibrated threshold; 0 shows every suggestion
