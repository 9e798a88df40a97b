"""What a model says about itself beyond its shape: the languages it was trained on, its fill-in-the-middle orders
and its chat template. GGUF files carry them as `ryzanstein.languages` and `ryzanstein.fim.orders` (string arrays)
and llama.cpp's `tokenizer.chat_template`; a file without them is taken to know every language and the common
prefix-suffix-middle order, and to have no chat template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FIM_ORDERS = ("psm", "spm")


@dataclass(frozen=True)
class ModelTraits:
    languages: tuple[str, ...] = ()  # VS Code language ids in lower case; () = any language
    fim_orders: tuple[str, ...] = ("psm",)  # the orders it was trained on, preferred first
    chat_template: str | None = None  # the Jinja chat template the model ships (GGUF tokenizer.chat_template)

    def knows(self, language_id: str) -> bool:
        return not self.languages or language_id.lower() in self.languages

    @property
    def fim_order(self) -> str:
        """The order prompts use: SPM where trained (the suffix leads, so the cache keeps it across keystrokes)."""
        return "spm" if "spm" in self.fim_orders else "psm"

    @classmethod
    def from_gguf_metadata(cls, meta: dict[str, Any]) -> ModelTraits:
        def strings(key: str) -> tuple[str, ...]:
            v = meta.get(key)
            return tuple(str(x).lower() for x in v if isinstance(x, str)) if isinstance(v, list) else ()

        orders = tuple(o for o in strings("ryzanstein.fim.orders") if o in FIM_ORDERS)
        template = meta.get("tokenizer.chat_template")
        return cls(
            languages=strings("ryzanstein.languages"),
            fim_orders=orders or ("psm",),
            chat_template=template if isinstance(template, str) and template.strip() else None,
        )
