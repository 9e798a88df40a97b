"""The ternary LLM engine: loaders, tokenizer, native model, sessions and generation."""

from pyserver.engine.config import ModelConfig
from pyserver.engine.errors import ModelLoadError
from pyserver.engine.model import Model, Session

__all__ = ["Model", "ModelConfig", "ModelLoadError", "Session"]
