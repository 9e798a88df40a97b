"""Errors the engine raises for bad model files: each names the file and the problem (the field at fault, where
there is one), on one line: the command line prints it as is, the editor shows it in its status."""

from __future__ import annotations

import os
import reprlib
from pathlib import Path

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4


def short_repr(value: object) -> str:
    """A value from a file, as a message may quote it: a hostile header's 50 MB string or huge array stays short."""
    return _SHORT.repr(value)


class ModelLoadError(ValueError):
    """A model file or directory cannot be used. The message names the path and what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(problem.split())  # one line, whatever a library's message held
        super().__init__(f"{self.path}: {self.problem}")


def unreachable(path: str | Path) -> str | None:
    """Why there is nothing to open at `path` ("no such file or directory", "too many levels of symbolic links",
    "permission denied", ...), or None. (Path.exists says False for all of them alike.)"""
    try:
        os.stat(path)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return None
