"""Errors the engine raises for bad model files: each names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class ModelLoadError(ValueError):
    """A model file or directory cannot be used. The message names the path and what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
