"""Chat messages -> prompt text: the model's own chat template (its GGUF `tokenizer.chat_template`), rendered with
Jinja2 in a sandbox the way Hugging Face transformers and llama.cpp render it (`messages`, `add_generation_prompt`,
`bos_token`, `eos_token`, `raise_exception`, whitespace kept as written).

A model without a template (the shipped code model, base checkpoints) gets FALLBACK_TEMPLATE: each message as a
`### Role:` block, then `### Assistant:`, the plain-transcript format base models continue most sensibly.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

FALLBACK_TEMPLATE = (
    "{% for m in messages %}### {{ m['role'] | capitalize }}:\n{{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)


class ChatTemplateError(ValueError):
    pass


def _raise(message: str) -> None:
    raise ChatTemplateError(message)


def render(template: str | None, messages: list[dict[str, Any]], bos: str = "", eos: str = "") -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.globals["raise_exception"] = _raise
    try:
        return env.from_string(template or FALLBACK_TEMPLATE).render(
            messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos
        )
    except ChatTemplateError:
        raise
    except TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template failed: {exc}") from exc
