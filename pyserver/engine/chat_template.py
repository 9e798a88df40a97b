"""ChatML prompts (Qwen2 / Qwen3, hence Ternary-Bonsai) with thinking off, for the refactors.

A model whose GGUF `tokenizer.chat_template` is ChatML is asked the way its template would ask it:

    <|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n{assistant_prefix}

Rendered here rather than through the template (the OpenAI-compatible API renders templates with Jinja2:
pyserver/api/chat.py) for two things a template cannot do: thinking is switched off the way Qwen3's own template
switches it off for `enable_thinking=False` (an empty think block opens the answer, so the model writes the answer
and not a monologue first), and the answer can be *started* (`assistant_prefix`: the code just before the gap, which
the model then continues). Qwen2-style templates, which know no thinking, get no think block.

Token ids are built piece by piece (`chatml_ids`): `<|im_start|>` / `<|im_end|>` are control tokens, which the
tokenizer never matches in text (a document that contains the literal `<|im_start|>` stays text), so the markers are
put in by id and only the text between them is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyserver.engine.tokenizer import Tokenizer

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINK_OFF = (
    f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n"  # what Qwen3's template writes after the assistant header, thinking off
)
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


def is_chatml(template: str | None) -> bool:
    """Whether a chat template is ChatML (it writes both markers)."""
    return bool(template) and IM_START in str(template) and IM_END in str(template)


def knows_thinking(template: str | None) -> bool:
    """Whether the template has Qwen3's thinking switch (a think block or `enable_thinking`)."""
    t = str(template or "")
    return "<think>" in t or "enable_thinking" in t


def _check(messages: Sequence[Message]) -> None:
    for m in messages:
        if m.role not in ROLES:
            raise ValueError(f"unknown chat role {m.role!r} (known: {', '.join(ROLES)})")


def render_chatml(messages: Sequence[Message], *, think_block: bool = True, assistant_prefix: str = "") -> str:
    """The prompt as text: each message as `<|im_start|>{role}\\n{content}<|im_end|>\\n`, then the assistant's
    header, the empty think block (thinking off; `think_block=False` for templates without thinking) and the
    start of its answer."""
    _check(messages)
    out = "".join(f"{IM_START}{m.role}\n{m.content}{IM_END}\n" for m in messages)
    return out + f"{IM_START}assistant\n" + (THINK_OFF if think_block else "") + assistant_prefix


@dataclass(frozen=True)
class ChatMarkers:
    start: int
    end: int

    @classmethod
    def of(cls, tok: Tokenizer) -> ChatMarkers | None:
        """The two markers' ids in this vocabulary, or None when it lacks either."""
        start, end = tok.id_of(IM_START), tok.id_of(IM_END)
        return None if start is None or end is None else cls(start, end)


def chatml_ids(
    tok: Tokenizer,
    messages: Sequence[Message],
    *,
    think_block: bool = True,
    assistant_prefix: str = "",
    markers: ChatMarkers | None = None,
) -> list[int]:
    """`render_chatml`'s prompt as token ids: the markers by id, the text between them encoded as one string each
    (as a tokenizer that splits at special tokens encodes the rendered text). ValueError when the vocabulary has no
    ChatML markers."""
    _check(messages)
    mk = markers or ChatMarkers.of(tok)
    if mk is None:
        raise ValueError(f"the vocabulary has no {IM_START} / {IM_END} tokens")
    ids: list[int] = []
    for m in messages:
        ids += [mk.start, *tok.encode(f"{m.role}\n{m.content}"), mk.end, *tok.encode("\n")]
    ids += [mk.start, *tok.encode("assistant\n")]
    if think_block:
        # Qwen3's vocabulary has <think> / </think> as single added tokens, which byte-level BPE would spell in
        # pieces: put in by id where the vocabulary has them (only here: the template's text, never the content).
        t_open, t_close = tok.id_of(THINK_OPEN), tok.id_of(THINK_CLOSE)
        if t_open is not None and t_close is not None:
            ids += [t_open, *tok.encode("\n\n"), t_close]
            return ids + tok.encode("\n\n" + assistant_prefix)
        ids += tok.encode(THINK_OFF)
    return ids + tok.encode(assistant_prefix)
