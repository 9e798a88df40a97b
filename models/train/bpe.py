"""Byte-level BPE for the shipped model, trained on the training split only."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pyserver.bench.stdlib_corpus import source_files
from pyserver.engine.gguf_writing import SPECIALS

VOCAB_SIZE = 4096  # total, specials included: a multiple of 256 (and of the int8 head's row blocks)


def train_tokenizer(out: Path, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator((f.text for f in source_files("train")), trainer)
    tok.add_special_tokens(list(SPECIALS))
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return tok
