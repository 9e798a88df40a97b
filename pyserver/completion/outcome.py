"""Why a completion request ended as it did: one reason per request, with a one-line message for the user (the
status tooltip, the log, the manual trigger's answer). Messages never hold document text.

The pipeline sets the reasons it knows (the gate, the filters, the model, a prompt cut to fit the time budget); the
LSP handler sets the rest (settings, a model still loading, a newer request, the editor's cancel). `bench
completion` counts the same reasons."""

from __future__ import annotations

from dataclasses import dataclass

# reason -> the message's template ({confidence}, {threshold} and {detail} are filled in)
REASONS: dict[str, str] = {
    "shown": "shown",
    "forwarded": "the rest of the suggestion being typed (from the cache)",
    "disabled": "suggestions are off (ryzanstein.enable)",
    "manual_only": "ryzanstein.trigger is manual: only Alt+\\ asks",
    "language_off": "suggestions are off for {detail} (ryzanstein.languages)",
    "language_unknown": "the model was not trained on {detail}",
    "too_large": "the document is too large for suggestions",
    "model_loading": "the model is still loading",
    "superseded": "a newer request took its place",
    "cancelled": "the editor cancelled it",
    "document_changed": "the document changed while it was computed",
    "gated": "held back: confidence {confidence:.2f} below the threshold {threshold:.2f} (ryzanstein.minConfidence)",
    "filtered": "the {detail} filter removed it",
    "model_empty": "the model had nothing to add here",
    "timeout": "the time budget ran out before a suggestion (ryzanstein.timeBudgetMs)",
    "cut_prompt": "the prompt was cut to fit the time budget ({detail}); ask again once it is warmed up",
    "error": "the completion failed ({detail}); the log has the details",
}
# What the filters' names mean to a user (pyserver/completion/filters/).
FILTER_WORDS = {
    "single_line": "rest-of-line",
    "block_end": "end-of-block",
    "cut_repetition": "repetition",
    "no_suffix_repeat": "repeats-the-code-after-the-cursor",
    "balance_brackets": "bracket-balance",
    "strip_trailing_whitespace": "whitespace-only",
    "drop_empty": "empty",
}


@dataclass(frozen=True)
class Outcome:
    reason: str  # a key of REASONS
    message: str  # one line, no document text
    confidence: float | None = None
    threshold: float | None = None

    @classmethod
    def of(
        cls, reason: str, confidence: float | None = None, threshold: float | None = None, detail: str = ""
    ) -> Outcome:
        template = REASONS[reason]
        message = template.format(confidence=confidence or 0.0, threshold=threshold or 0.0, detail=detail)
        return cls(reason, " ".join(message.split()), confidence, threshold)

    @property
    def empty(self) -> bool:
        return self.reason not in ("shown", "forwarded")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"reason": self.reason, "message": self.message}
        if self.confidence is not None:
            out["confidence"] = round(self.confidence, 3)
        if self.threshold is not None:
            out["threshold"] = round(self.threshold, 3)
        return out


SHOWN = Outcome.of("shown")
