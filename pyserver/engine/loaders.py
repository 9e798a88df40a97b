"""Which loader a path needs: a GGUF file or a Hugging Face safetensors directory (or one of its .safetensors
files, which stands for its directory). Both end with the same check that the tokenizer and the embedding agree."""

from __future__ import annotations

from pathlib import Path

from pyserver.engine.errors import ModelLoadError, unreachable
from pyserver.engine.tokenizer import Tokenizer
from pyserver.engine.weights import ModelWeights


def load_weights(path: Path) -> tuple[ModelWeights, Tokenizer]:
    if path.is_dir():
        return _load_checkpoint_dir(path)
    if (problem := unreachable(path)) is not None:
        raise ModelLoadError(path, problem)
    if path.suffix == ".safetensors":
        from pyserver.engine.safetensors_file import SafetensorsFile

        SafetensorsFile(path)  # this file's header errors name this file, before the directory's others
        return _load_checkpoint_dir(path.parent)
    from pyserver.engine.gguf_loader import load_gguf

    weights, g = load_gguf(path)
    tokenizer = Tokenizer.from_gguf_metadata(g.metadata, path)
    # llama.cpp's rule: the vocabulary is the token list, and the embedding has one row per token. Fewer tokens
    # than rows and the model can produce ids no token spells; more, and the tokenizer produces ids with no row.
    if tokenizer.vocab_size != weights.config.vocab:
        raise ModelLoadError(
            path,
            f"the vocabulary has {tokenizer.vocab_size} tokens ('tokenizer.ggml.tokens')"
            f" but 'token_embd.weight' has {weights.config.vocab} rows",
        )
    return weights, tokenizer


def _load_checkpoint_dir(directory: Path) -> tuple[ModelWeights, Tokenizer]:
    from pyserver.engine.safetensors_loader import load_safetensors_dir

    weights, tokenizer = load_safetensors_dir(directory)
    # Checkpoints pad their embedding past the tokenizer (to a multiple of 64, say): fewer tokens than rows is
    # normal there; more would encode ids the embedding has no row for.
    if tokenizer.vocab_size > weights.config.vocab:
        raise ModelLoadError(
            directory,
            f"tokenizer.json has {tokenizer.vocab_size} tokens but 'model.embed_tokens.weight' has"
            f" {weights.config.vocab} rows: the ids past them could not be embedded",
        )
    return weights, tokenizer
