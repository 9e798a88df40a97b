"""A safetensors reader (bf16 included, which numpy lacks and the `safetensors` package's numpy API refuses).

Every header field is checked before use and a bad one is a `ModelLoadError` naming the file and the field: the
header length against the file, the JSON itself (nesting depth, non-finite numbers, duplicate names), each entry's
dtype, shape (non-negative integers, a plausible element count) and data offsets (two integers, matching the shape,
inside the file, no two tensors overlapping). Tensor data is read on request with plain reads into memory this
process owns, never mapped: see gguf_file.py for why (a file changed underneath must not SIGBUS the server).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from pyserver.engine.errors import ModelLoadError, short_repr
from pyserver.engine.gguf_file import MAX_ELEMENTS, changed_error, open_model_file, read_file_range

_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "F64": np.float64,
    "U8": np.uint8,
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "U16": np.uint16,
    "U32": np.uint32,
    "BOOL": np.bool_,
}
MAX_HEADER = 100 << 20
MAX_DIMS = 8

_Entry = tuple[str, tuple[int, ...], int, int]  # dtype, shape, absolute start, absolute stop


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"not a finite number: {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SafetensorsFile:
    """A safetensors file's header, checked. `entries` maps names to (dtype, shape, start, stop); `array(name)`
    reads a tensor into memory. No descriptor or mapping is held between calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        f, self.identity = open_model_file(path)
        with f:
            size = self.identity.size
            if size < 8:
                raise ModelLoadError(path, f"file is truncated ({size} bytes)")
            head = f.read(8)
            if len(head) < 8:
                raise changed_error(path)
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise ModelLoadError(
                    path, f"header length {n} does not fit the file ({size} bytes): truncated or not safetensors"
                )
            text = f.read(n)
        if len(text) < n:
            raise changed_error(path)
        header = self._parse_json(text)
        self.metadata = self._metadata(header.pop("__metadata__", {}))
        self.entries: dict[str, _Entry] = {}
        base = 8 + n
        for name, entry in header.items():
            self.entries[name] = self._entry(name, entry, base, size)
        self._check_no_overlap()

    def _fail(self, problem: str) -> NoReturn:
        raise ModelLoadError(self.path, f"corrupt safetensors header: {problem}")

    def _parse_json(self, text: bytes) -> dict[str, Any]:
        try:
            header = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
        except RecursionError:
            self._fail("the header nests too deeply (a tensor entry is two levels deep)")
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            self._fail(f"the header is not valid JSON: {exc}")
        if not isinstance(header, dict):
            self._fail(f"the header must be a JSON object, is {type(header).__name__}")
        return header

    def _metadata(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self._fail(f"'__metadata__' must be an object of strings, got {short_repr(value)}")
        return value

    def _entry(self, name: str, entry: Any, base: int, size: int) -> _Entry:
        if not isinstance(entry, dict):
            self._fail(f"tensor {name!r}: its entry must be an object, got {short_repr(entry)}")
        for key in ("dtype", "shape", "data_offsets"):
            if key not in entry:
                self._fail(f"tensor {name!r}: entry has no {key!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            self._fail(f"tensor {name!r}: 'dtype' must be a string, got {short_repr(dtype)}")
        if dtype not in _DTYPES:
            raise ModelLoadError(self.path, f"tensor {name!r} has unsupported dtype {dtype[:40]}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_count(d) for d in shape):
            self._fail(
                f"tensor {name!r}: 'shape' must be a list of non-negative integers (at most {MAX_DIMS}),"
                f" got {short_repr(shape)}"
            )
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            self._fail(f"tensor {name!r}: shape {shape} is implausible ({count} elements)")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            self._fail(f"tensor {name!r}: 'data_offsets' must be two integers, got {short_repr(offsets)}")
        start, stop = offsets
        if stop - start != count * np.dtype(_DTYPES[dtype]).itemsize:
            self._fail(
                f"tensor {name!r}: data offsets {start}..{stop} do not match its shape {shape} and dtype {dtype}"
            )
        if base + stop > size:
            raise ModelLoadError(
                self.path,
                f"tensor {name!r}: data offsets {start}..{stop} are outside the file ({size - base} bytes of data):"
                " truncated?",
            )
        return dtype, tuple(shape), base + start, base + stop

    def _check_no_overlap(self) -> None:
        placed = sorted((e[2], e[3], name) for name, e in self.entries.items() if e[3] > e[2])
        for (_, a_stop, a), (b_start, _, b) in zip(placed, placed[1:]):
            if a_stop > b_start:
                self._fail(f"tensors {a!r} and {b!r} overlap")

    def dtype(self, name: str) -> str:
        return self.entries[name][0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def array(self, name: str) -> np.ndarray:
        """The stored array, read into memory (read-only; BF16 as raw uint16)."""
        dtype, shape, a, b = self.entries[name]
        return read_file_range(self.path, self.identity, a, b - a).view(_DTYPES[dtype]).reshape(shape)

    def float32(self, name: str) -> np.ndarray:
        arr = self.array(name)
        if self.dtype(name) == "BF16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(np.float32)
