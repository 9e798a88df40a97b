"""Writing GGUF metadata for the models this project makes (the shipped model's export, the tests' small models),
through the `gguf` package's writer, in llama.cpp's `bitnet` / `llama` conventions."""

from __future__ import annotations

import json

import gguf
from tokenizers import Tokenizer

from pyserver.engine.config import ModelConfig

# Control tokens at the end of the project's BPE vocabularies, in this order.
SPECIALS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")
_NORMAL, _CONTROL = 1, 3


def add_hparams(w: gguf.GGUFWriter, cfg: ModelConfig) -> None:
    """The model's shape under llama.cpp's keys (the writer's architecture prefixes them)."""
    w.add_context_length(cfg.context_length)
    w.add_embedding_length(cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.n_ff)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    if cfg.head_dim != cfg.n_embd // cfg.n_head:
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_rope_freq_base(cfg.rope_base)
    w.add_rope_dimension_count(cfg.rope_dim)
    w.add_vocab_size(cfg.vocab)


def bpe_vocabulary(tok: Tokenizer) -> tuple[list[str], list[str], list[int]]:
    """(tokens in id order, merges, GGUF token types) of a byte-level BPE whose specials are SPECIALS, last."""
    model = json.loads(tok.to_str())["model"]
    tokens = [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])]
    for s in SPECIALS:
        if tok.token_to_id(s) != len(tokens):
            raise ValueError(f"special token {s} must follow the BPE vocabulary")
        tokens.append(s)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = [_NORMAL] * (len(tokens) - len(SPECIALS)) + [_CONTROL] * len(SPECIALS)
    return tokens, merges, types


def add_bpe_tokenizer(w: gguf.GGUFWriter, tok: Tokenizer, pre: str = "default") -> list[str]:
    """Tokenizer metadata (llama.cpp's keys: gpt2 BPE, the pre-tokenizer's name, end-of-text as BOS/EOS, the
    fill-in-the-middle ids); returns the token list."""
    tokens, merges, types = bpe_vocabulary(tok)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(types)
    ids = {s: tokens.index(s) for s in SPECIALS}
    w.add_bos_token_id(ids["<|endoftext|>"])
    w.add_eos_token_id(ids["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_uint32("tokenizer.ggml.fim_pre_token_id", ids["<|fim_prefix|>"])
    w.add_uint32("tokenizer.ggml.fim_suf_token_id", ids["<|fim_suffix|>"])
    w.add_uint32("tokenizer.ggml.fim_mid_token_id", ids["<|fim_middle|>"])
    w.add_uint32("tokenizer.ggml.fim_sep_token_id", ids["<|file_sep|>"])
    return tokens
