"""The shipped model's tokenizer: byte-level BPE trained on the training split of the corpus (models/train/corpus.py).

Pre-tokenization is llama.cpp's `llama-bpe` (Llama 3) regex, which the engine rebuilds from the GGUF key
`tokenizer.ggml.pre` (pyserver/engine/tokenizer.py), so both encode alike. For code it means:
- a line break always ends a pre-token (`\\s*[\\r\\n]+`, or punctuation followed by line breaks such as `):\\n`), so the
  start of every line is a token boundary: a prompt cut at a line start tokenizes as the same cut of the whole file;
- indentation is a run of spaces of its own (`\\s+(?!\\S)`) before ` word`: eight spaces then `return` are `7 spaces`
  + ` return`, and BPE learns the runs of every indentation level as single tokens;
- digits in groups of at most three.

Control tokens come last, in SPECIALS order (the engine's GGUF writer expects exactly these; a test checks that the
two lists agree). This module must not import pyserver.engine: it also runs on the training machine, which has no
native engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

# The control tokens and the vocabulary's GGUF form are the engine's GGUF writer's: one definition of the layout.
from pyserver.engine.gguf_writing import SPECIALS, add_bpe_tokenizer

PRE = "llama-bpe"  # the GGUF `tokenizer.ggml.pre` that names PRE_REGEX
PRE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
VOCAB_SIZE = 8192


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def train_tokenizer(texts: Iterable[str], out: Path, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIALS),
        show_progress=False,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens(list(SPECIALS))
    if tok.get_vocab_size() != vocab_size:
        raise ValueError(f"trained {tok.get_vocab_size()} tokens, wanted {vocab_size}")
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == vocab_size - len(SPECIALS) + i
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return load(out)


def load(path: Path) -> Tokenizer:
    """The tokenizer as training uses it: text that spells a control token is encoded as text, never as the token."""
    tok = Tokenizer.from_file(str(path))
    tok.encode_special_tokens = True
    return tok


def special_ids(tok: Tokenizer) -> dict[str, int]:
    return {s: int(tok.token_to_id(s)) for s in SPECIALS}


def token_bytes(tok: Tokenizer) -> list[bytes]:
    """The bytes every id stands for (b"" for control tokens): decoding ids is a join, no tokenizer call."""
    table = {c: b for b, c in _byte_to_unicode().items()}
    out = []
    specials = set(SPECIALS)
    for i in range(tok.get_vocab_size()):
        piece = tok.id_to_token(i)
        out.append(b"" if piece is None or piece in specials else bytes(table[c] for c in piece))
    return out


def add_gguf_metadata(w, tok: Tokenizer) -> int:  # type: ignore[no-untyped-def]
    """The tokenizer's GGUF keys with this tokenizer's pre-tokenizer (the engine's writer makes them). w: a
    gguf.GGUFWriter. Returns the number of tokens."""
    return len(add_bpe_tokenizer(w, tok, pre=PRE))


def _byte_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
