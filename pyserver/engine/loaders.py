"""Which loader a path needs: a GGUF file or a Hugging Face safetensors directory."""

from __future__ import annotations

from pathlib import Path

from pyserver.engine.errors import ModelLoadError
from pyserver.engine.tokenizer import Tokenizer
from pyserver.engine.weights import ModelWeights


def load_weights(path: Path) -> tuple[ModelWeights, Tokenizer]:
    if path.is_dir():
        from pyserver.engine.safetensors_loader import load_safetensors_dir

        return load_safetensors_dir(path)
    if not path.exists():
        raise ModelLoadError(path, "no such file or directory")
    from pyserver.engine.gguf_loader import load_gguf

    weights, g = load_gguf(path)
    return weights, Tokenizer.from_gguf_metadata(g.metadata, path)
