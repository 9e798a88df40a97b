"""Prompt pieces: fill-in-the-middle within a budget (for refactors and one-off completions), extra-context
blocks, and the split of the cursor's line into prompt and forced start."""

from __future__ import annotations

from pyserver.completion.window import layout
from pyserver.engine.tokenizer import Tokenizer

SUFFIX_SHARE = 4  # the suffix gets 1/SUFFIX_SHARE of the prompt budget, the prefix the rest
# Longest tail of a line that the model re-spells (see `split_at_line_start`).
RESPELL_MAX_CHARS = 160


def context_block(path: str, text: str) -> str:
    """Code from another file, as the prompt's extra context shows it (a comment naming the file, then the code)."""
    return f"# {path}\n{text}\n\n"


def split_at_line_start(text: str) -> tuple[str, str]:
    """(prompt text, forced text): the text's last line is left out of the prompt and given to the generation as
    its forced start (`Generation(forced_prefix=...)`), which the model then spells with its own tokens.

    A prompt that ends mid-line usually ends mid-token (`return ` before ` side`, indentation before `return`), a
    token sequence the model never saw; ending it at the line start instead matches how fill-in-the-middle is
    trained (a whole line as the middle), and while the user types along a line the prompt stays the same, so the
    session's cache serves all of it. A very long last line stays in the prompt."""
    start = text.rfind("\n") + 1
    if len(text) - start > RESPELL_MAX_CHARS:
        return text, ""
    return text[:start], text[start:]


def prompt_mode(tok: Tokenizer, order: str = "psm") -> str:
    """How completion prompts are laid out for this model, as doctor reports it: fill-in-the-middle in `order` when
    the file declares the three FIM tokens (`window.layout`), else the prefix alone."""
    sp = tok.special
    if sp.has_fim:
        return f"fill-in-the-middle ({order.upper()}: the file declares its prefix / suffix / middle tokens)"
    return "prefix only (the file declares no fill-in-the-middle tokens)"


def fim_prompt(
    tok: Tokenizer, prefix: str, suffix: str, budget: int, suffix_tokens: int | None = None, order: str = "psm"
) -> list[int]:
    """The fill-in-the-middle prompt (`window.layout`) within `budget` tokens: the prefix keeps its end (nearest the
    cursor), the suffix its start (at most suffix_tokens, default a quarter of the budget). Models without FIM
    tokens get the prefix alone."""
    if not tok.special.has_fim:
        return tok.encode(prefix)[-budget:] if budget > 0 else []
    room = max(0, budget - 3)
    cap = room // SUFFIX_SHARE if suffix_tokens is None else min(suffix_tokens, room // SUFFIX_SHARE)
    suffix_ids = tok.encode(suffix)[:cap] if suffix else []
    prefix_ids = tok.encode(prefix)[-(room - len(suffix_ids)) :] if room > len(suffix_ids) else []
    return layout(tok, prefix_ids, suffix_ids, order)
