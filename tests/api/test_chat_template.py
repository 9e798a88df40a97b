"""Chat templates render as the reference implementations render them (hand-written expected strings)."""

from __future__ import annotations

import pytest

from pyserver.api.chat import ChatTemplateError, render

# The shape of Llama 3's template (as its GGUF's tokenizer.chat_template carries it).
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
STRICT = (
    "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with the user') }}{% endif %}"
)


def test_a_models_template() -> None:
    messages = [{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "Hi"}]
    assert render(LLAMA3, messages, bos="<|begin_of_text|>") == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_the_fallback_for_models_without_one() -> None:
    assert render(None, [{"role": "user", "content": "Sort a list"}]) == "### User:\nSort a list\n\n### Assistant:\n"


def test_template_errors_are_the_callers_errors() -> None:
    with pytest.raises(ChatTemplateError, match="must start with the user"):
        render(STRICT, [{"role": "assistant", "content": "x"}])
    with pytest.raises(ChatTemplateError, match="chat template failed"):
        render("{% for %}", [{"role": "user", "content": "x"}])
    with pytest.raises(ChatTemplateError):  # the sandbox: no reaching into Python internals
        render("{{ messages.__class__.__mro__[1].__subclasses__() }}", [{"role": "user", "content": "x"}])
