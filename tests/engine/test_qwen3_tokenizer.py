"""The Qwen2 tokenizer read from a Qwen3 GGUF (pre-tokenizer "qwen2"): the same ids as llama.cpp's own tokenizer on
the same file, and its FIM / chat tokens found."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyserver.engine.gguf_file import GGUFFile
from pyserver.engine.tokenizer import Tokenizer

FIXTURE = Path(__file__).resolve().parents[2] / "models" / "fixtures" / "qwen3-tiny-outliers-q2_0.gguf"
SNIPPETS = [
    "def add(a, b):\n    return a + b  # 12345\n",
    "x = [1, 22, 333]\r\n\n\n\tif x: print('it''s')",
    '  class Foo(Bar):\n\t"""Doc 2024."""\n    \u03bb = "\u00fcn\u00efcode" ++ 9999999\n',
    "I'LL DON'T we've 1.5e-10;   \n\n  }\n}",
    "for (int i = 0; i < n; ++i) {\n        sum += a[i] * 0x1F;\n    }\n",
]


def tokenizer(meta_changes: dict[str, object] | None = None) -> Tokenizer:
    meta = dict(GGUFFile(FIXTURE).metadata)
    meta.update(meta_changes or {})
    return Tokenizer.from_gguf_metadata(meta, FIXTURE)


def test_same_ids_as_llama_cpp() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from pyserver.bench.peer_llama import quiet

    quiet(llama_cpp)
    theirs = llama_cpp.Llama(str(FIXTURE), vocab_only=True, verbose=False)
    ours = tokenizer()
    for s in SNIPPETS:
        assert ours.encode(s) == theirs.tokenize(s.encode(), add_bos=False, special=False), s
        assert ours.decode(ours.encode(s)) == s
    # The pattern matters: llama3's (digits in threes) differs from llama.cpp's on the same file.
    llama3 = tokenizer({"tokenizer.ggml.pre": "llama-bpe"})
    assert llama3.encode(SNIPPETS[0]) != theirs.tokenize(SNIPPETS[0].encode(), add_bos=False, special=False)


def test_fim_and_chat_tokens() -> None:
    t = tokenizer()
    sp = t.special
    assert sp.has_fim and not sp.add_bos
    assert [sp.fim_prefix, sp.fim_suffix, sp.fim_middle, sp.fim_sep] == [
        t.id_of(p) for p in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")
    ]
    assert sp.eos == t.id_of("<|im_end|>") and sp.bos == t.id_of("<|endoftext|>")
    # Without the fim_* keys the ids come from the token strings.
    keys = ("fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id", "fim_sep_token_id")
    meta = {k: v for k, v in GGUFFile(FIXTURE).metadata.items() if k.split(".")[-1] not in keys}
    assert Tokenizer.from_gguf_metadata(meta, FIXTURE).special == sp
    # Text that spells a control token is text.
    assert t.id_of("<|im_start|>") not in t.encode("<|im_start|>user")
    assert "<|im_start|>" in str(GGUFFile(FIXTURE).metadata["tokenizer.chat_template"])
